"""Vocabularies (names + synonyms in plain text) and the text-embedding index CLIP scores against."""

from annotator.vocab.index import DEFAULT_TEMPLATES, TextIndex, benchmark_topk
from annotator.vocab.vocabulary import Entry, Vocabulary

__all__ = ["DEFAULT_TEMPLATES", "Entry", "TextIndex", "Vocabulary", "benchmark_topk"]
