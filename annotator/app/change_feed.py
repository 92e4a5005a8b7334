"""What other processes changed in the open project, polled (ADR 0011): accepted annotations of
other annotators (the store's change feed) and proposals another process wrote (`annotator
autolabel` beside the window: `app.review_feed`). Qt-free: the window's timer calls `poll()` every
2 s and refreshes what it names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotator.app.review_feed import ReviewFeed
from annotator.errors import AnnotatorError


@dataclass(frozen=True)
class Changed:
    """One poll's news: the listed images whose annotations changed, whether proposals did."""

    images: list[int] = field(default_factory=list)
    proposals: bool = False


class ChangeFeed:
    """The session's project's change token and proposal signature, between polls."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.token: int | None = None
        self.review: ReviewFeed | None = None

    def start(self, project: Any, proposals: Any = None) -> None:
        """A project was opened: news from now on (`proposals`: its `ProposalStore`, if any)."""
        self.token = project.changes_since().token
        self.review = ReviewFeed(proposals) if proposals is not None else None

    def poll(self) -> Changed:
        """What changed since the last poll; a store error is said in the status bar and the
        next poll tries again."""
        project = self.session.project
        if project is None or self.token is None:
            return Changed()
        try:
            changes = project.changes_since(self.token)
            proposals = self.review is not None and self.review.poll()
        except AnnotatorError as error:
            self.session.status(str(error), 4000)
            return Changed()
        self.token = changes.token
        known = {row.image_id for row in self.session.rows}
        return Changed(sorted(changes.images & known), bool(proposals))


__all__ = ["ChangeFeed", "Changed"]
