"""models/mapped_pages: the text tower's mapped pages are given back after an index build, and
nothing that is not the file's own is ever thrown away (issue 26, the window's peak memory)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from annotator.models import mapped_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/pagemap")

TEXTS = ["a dog", "a red double-decker bus", "two cats on a sofa", "an aerial photo of a field"]


def _clip(tmp_path):
    from annotator.models.clip import ClipModel
    from tests.tiny_clip import make_tiny_clip

    config, weights = make_tiny_clip(tmp_path, tower="convnext")
    return ClipModel.load(name=None, weights=weights, config=config)


def _text_parameters(model) -> list[torch.Tensor]:
    visual = {id(p) for p in model.model.visual.parameters()}
    return [p for p in model.model.parameters() if id(p) not in visual]


def test_text_pages_released_and_read_again_with_the_same_numbers(tmp_path):
    model = _clip(tmp_path)
    before = model.encode_text(TEXTS)
    assert float(np.abs(before[0] - before[1]).max()) > 1e-3  # the texts differ: not degenerate
    text = _text_parameters(model)
    resident = mapped_pages.resident_bytes(text)
    assert resident > 1 << 20  # the token embedding alone is 12 MB of mapped file
    released = model.release_text_pages()
    assert released >= resident // 2
    assert mapped_pages.resident_bytes(text) < resident - released // 2
    visual = list(model.model.visual.parameters())
    visual_resident = mapped_pages.resident_bytes(visual)
    model.release_text_pages()
    assert mapped_pages.resident_bytes(visual) == visual_resident  # the image tower untouched
    again = model.encode_text(TEXTS)
    assert np.array_equal(before, again)  # read again from the page cache: the file's numbers


def test_a_written_page_of_a_mapped_file_is_never_released(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.arange(1 << 20, dtype=torch.float32)}, path)  # 4 MB
    tensor = torch.load(path, mmap=True, weights_only=True)["w"]
    assert float(tensor[5000:5010].sum()) > 0  # read: resident file pages
    tensor[0] = -7.0  # copy-on-write: that page is now this process's own
    assert mapped_pages.release([tensor]) == 0  # one written page: the tensor is left alone
    assert float(tensor[0]) == -7.0
    clean = tensor[4096:]  # whole pages not written
    assert float(clean.sum()) > 0  # resident again (a write may unmap a large folio's pages)
    assert mapped_pages.release([clean]) > 0
    assert float(tensor[0]) == -7.0
    assert torch.equal(clean, torch.arange(4096, 1 << 20, dtype=torch.float32))


def test_memory_not_mapped_from_a_file_is_left_alone():
    tensor = torch.randn(1 << 20)
    copy = tensor.clone()
    assert mapped_pages.release([tensor]) == 0
    assert torch.equal(tensor, copy)


def test_the_index_build_gives_the_text_pages_back(tmp_path):
    from annotator.index_build import build_index
    from annotator.vocab.vocabulary import Vocabulary

    model = _clip(tmp_path)
    text = _text_parameters(model)
    calls = []
    release = model.release_text_pages
    model.release_text_pages = lambda: calls.append(release()) or calls[-1]
    index = build_index(Vocabulary.loads("dog\ncat\nbus"), model, tmp_path / "cache", None)
    assert index.complete and len(calls) == 1 and calls[0] > 0
    assert mapped_pages.resident_bytes(text) < 1 << 20
    build_index(
        Vocabulary.loads("dog\ncat\nbus"), model, tmp_path / "cache", None
    )  # all cached: no encode
    assert len(calls) == 1
