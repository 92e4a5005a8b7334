"""The project store: images, categories and annotations in SQLite."""

from annotator.store.postgres import PostgresProject  # registers itself for postgresql:// URLs
from annotator.store.project import KEEP, Annotation, Category, ImageRecord, Project

__all__ = ["KEEP", "Annotation", "Category", "ImageRecord", "PostgresProject", "Project"]
