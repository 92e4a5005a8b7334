"""Every known checkpoint shows a size; estimated ones match what the architecture gives.

The estimates (annotator/models/weight_sizes.py) are recomputed with scripts/weight_sizes.py:
the real configuration built on the meta device (no memory), tensors counted, fp32 bytes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from annotator.models import weights

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "weight_sizes.py"


def _script():
    spec = importlib.util.spec_from_file_location("weight_sizes_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_known_entry_shows_a_size() -> None:
    for w in weights.list_known():
        assert w.size_label, w.name
        if w.size is None:  # only estimates carry the "approximately" sign
            assert w.size_label.startswith("\u2248"), w.name
        else:
            assert "\u2248" not in w.size_label, w.name


def test_labels() -> None:
    assert weights.known("sam_vit_b").size_label == "375 MB"
    assert weights.known("sam2.1_hiera_tiny").size_label == "\u2248156 MB"


def test_estimate_is_never_a_download_check(tmp_path: Path, monkeypatch) -> None:
    """A file whose size differs from the estimate still verifies (no published size/sha256)."""
    path = tmp_path / "clip.bin"
    path.write_bytes(b"x" * 10)
    assert weights.verify(path, weights.DEFAULT_CLIP)
    assert weights.known_name_for(path) is None


@pytest.mark.parametrize(
    "name", ["sam2.1_hiera_tiny", "edgetam", "clip_convnext_base_w_laion2b_s13b_b82k_augreg"]
)
def test_table_matches_architecture(name: str) -> None:
    assert weights.known(name).approx_size == _script().approx_size(name)
