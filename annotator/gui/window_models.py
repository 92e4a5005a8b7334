"""The window's side of the model thread: loading the models (or saying which files are missing),
the worker's signals wired to the session and the views, the vocabulary and the label restriction
sent to the worker.

A mixin of `MainWindow`; every method runs on the window.
"""

from __future__ import annotations

from annotator.app.vocabulary import snapshot
from annotator.errors import AnnotatorError
from annotator.gui.first_run import FirstRunDialog, missing_weights, with_cached_weights
from annotator.gui.settings import ModelConfig


class WindowModels:
    """Model loading and the worker's answers (a mixin of `MainWindow`)."""

    def _connect_worker(self) -> None:
        wk = self.worker
        wk.engine_ready.connect(self._engine_ready)
        wk.engine_failed.connect(self._engine_failed)
        wk.engine_loading.connect(lambda name: self.model_label.setText(f"loading {name}…"))
        wk.progress.connect(self._progress)
        wk.encoded.connect(lambda image_id: self.images.model_.update(image_id, encoded=True))
        wk.encode_progress.connect(self._encode_progress)
        wk.proposal_ready.connect(self.controller.on_proposal)
        wk.labels_ready.connect(self.controller.on_labels)
        wk.vocabulary_ready.connect(
            lambda n: self.show_status(f"Suggestions now use {n} vocabulary entries", 4000)
        )
        wk.failed.connect(self._worker_failed)
        for panel in (self.search, self.similar, self.tags):
            wk.discovered.connect(panel.on_result)
            wk.failed.connect(panel.on_failed)
        wk.vocabulary_ready.connect(lambda _n: self.tags.request())

    def load_models(self, config: ModelConfig) -> None:
        """Start loading in the worker, or say which files are missing (manual tools still work)."""
        config = with_cached_weights(config)  # files downloaded earlier (GUI or CLI) count
        self.config = config
        self.session.set_engine(False)
        missing = config.missing_files()
        if missing:
            text = "Missing model files: " + "; ".join(missing)
            self.model_label.setText(f"{text}. Manual tools only (File ▸ Download models…)")
            self.model_label.setToolTip("\n".join(missing))
            self.show_status(text + ". Rectangle and polygon tools still work.", 0)
            return
        problem = config.checkpoint_problem()  # a family mismatch: one line, not a traceback
        if problem is not None:
            self.model_label.setText("segmenter checkpoint refused: manual tools only")
            self.model_label.setToolTip(problem)
            self.show_error(f"Could not load the models: {problem}")
            return
        try:
            spec = config.to_spec(self.cache_dir)
        except AnnotatorError as error:  # a value the spec refuses (an unknown region head)
            self._engine_failed(str(error))
            return
        self.model_label.setText("loading models…")
        self.worker.load(spec)

    def offer_downloads(self) -> FirstRunDialog | None:
        """Open the first-run dialog for the missing default weights (non-modal); None if none are."""
        missing = missing_weights(self.config)
        if not missing:
            self.show_status("No model file is missing", 4000)
            return None
        if self.first_run is not None:
            self.first_run.close()
        self.first_run = FirstRunDialog(missing, self.config, self.settings, self)
        self.first_run.models_ready.connect(self.load_models)
        self.first_run.show()
        return self.first_run

    def _engine_ready(self, info: dict) -> None:
        self.session.set_engine(True, info)
        self.exemplars.set_model_id(str(info.get("region_model_id", "")))
        self.model_label.setText(f"{info['device']} · {info['sam']} · CLIP {info['clip']}")
        self.progress.setVisible(False)
        self.clear_status()
        self.categories_changed()
        # The vocabulary was edited before the models were ready.
        if len(self.vocabulary) != info.get("vocabulary", -1):
            self.worker.set_vocabulary(snapshot(self.vocabulary))
        self._send_order()
        if self.controller.annotate.has_prompts():
            self.controller.annotate.request_mask()
        if self.canvas.image_size() is not None:
            self.tags.request()

    def _engine_failed(self, message: str) -> None:
        self.session.set_engine(False)
        self.model_label.setText("models failed to load: manual tools only")
        self.show_error(f"Could not load the models: {message}")

    def _worker_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        self.controller.on_failed(kind, image_id, request_id, message)
        if kind == "encode":
            self.images.model_.update(image_id, failed=message)
        if kind in ("decode", "relabel") and image_id != self.image_id:
            return
        self.show_error(f"{kind} failed: {message}")

    def _vocabulary_edited(self) -> None:
        self.vocab_editor.refresh()
        self.update_completer()

    def _send_vocabulary(self) -> None:
        """The edits have paused: save the file and re-embed the texts."""
        self.save_vocabulary()
        if self.engine_ready:
            self.worker.set_vocabulary(snapshot(self.vocabulary))

    def categories_changed(self) -> None:
        """Keep the worker's 'project labels only' restriction and the completer in step."""
        names = None
        if self.vocab_editor.restrict.isChecked() and self.project is not None:
            names = [c.name for c in self.project.categories()]
        self.controller.annotate.set_restrict(names)  # clicks: sent with each request
        self.worker.set_restrict(names)  # discovery jobs
        self.update_completer()

    def update_completer(self) -> None:
        names = self.vocabulary.names()
        if self.project is not None:
            extra = [
                c.name for c in self.project.categories() if self.vocabulary.match(c.name) is None
            ]
            names = names + extra
        self.suggestions.set_names(names)


__all__ = ["WindowModels"]
