"""Links in e-mails: PUBLIC_BASE_URL plus the gateway path of each resource, built here and nowhere else."""
from __future__ import annotations

from urllib.parse import quote, urlencode


class Links:
    """URLs of the platform's resources as a liaison or reviewer opens them (through the gateway)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def absolute(self, url_or_path: str) -> str:
        """An http(s) URL as given; anything else is taken as a path under the base URL."""
        if url_or_path.startswith(("http://", "https://")):
            return url_or_path
        return f"{self.base}/{url_or_path.lstrip('/')}"

    def _path(self, *parts: str) -> str:
        return self.base + "".join(f"/{quote(part, safe='')}" for part in parts)

    def campaign(self, campaign_id: str) -> str:
        """The campaign's plan (活动方案)."""
        return self._path("intake", "campaigns", campaign_id)

    def materials(self, campaign_id: str) -> str:
        """The campaign's reference materials (参考资料)."""
        return self._path("intake", "campaigns", campaign_id, "materials")

    def unit(self, unit_id: str) -> str:
        """A unit, with its liaison."""
        return self._path("intake", "units", unit_id)

    def submission(self, submission_id: str) -> str:
        """A submission as its unit sees it."""
        return self._path("intake", "submissions", submission_id)

    def unit_submissions(self, unit_id: str) -> str:
        """A unit's submissions: where it reports what is missing."""
        return f"{self._path('intake', 'submissions')}?{urlencode({'unit_id': unit_id})}"

    def evidence(self, submission_id: str) -> str:
        """A submission's evidence, where files are uploaded."""
        return self._path("evidence", "submissions", submission_id, "evidence")

    def review_item(self, submission_id: str) -> str:
        """A submission in the review queue."""
        return self._path("review", "submissions", submission_id)

    def review_queue(self) -> str:
        """The review queue."""
        return self._path("review", "queue")

    def inspection(self, inspection_id: str) -> str:
        """An inspection record."""
        return self._path("review", "inspections", inspection_id)

    def supervision(self, supervision_id: str) -> str:
        """A supervision case."""
        return self._path("review", "supervisions", supervision_id)

    def circular(self, circular_id: str) -> str:
        """A published circular."""
        return self._path("review", "circulars", circular_id)
