"""Links in e-mails: PUBLIC_BASE_URL plus the web console's page for each thing, built here and nowhere else.

Every link opens a console page (never a JSON endpoint that needs a bearer token): a reader who is not logged in
goes to 登录 first and then straight to the page (the console's `next`). The console lives under /console both in
embedded mode and behind the gateway.
"""

from __future__ import annotations

from urllib.parse import quote

CONSOLE = "console"


class Links:
    """URLs of the console pages where a liaison or reviewer opens what a mail is about (through the gateway)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def absolute(self, url_or_path: str) -> str:
        """An http(s) URL as given; anything else is taken as a path under the base URL."""
        if url_or_path.startswith(("http://", "https://")):
            return url_or_path
        return f"{self.base}/{url_or_path.lstrip('/')}"

    def _page(self, *parts: str, fragment: str = "") -> str:
        path = "".join(f"/{quote(part, safe='')}" for part in parts)
        return f"{self.base}/{CONSOLE}{path or '/'}" + (f"#{quote(fragment, safe='')}" if fragment else "")

    def home(self) -> str:
        """The console's start page (each role is sent to its own first page)."""
        return self._page()

    def campaign(self, campaign_id: str) -> str:
        """The campaign's plan (活动方案): windows, deadlines, measures."""
        return self._page("campaigns", campaign_id)

    def materials(self, campaign_id: str) -> str:
        """The campaign's reference materials (参考资料), on the plan's page."""
        return self._page("campaigns", campaign_id, fragment="materials")

    def unit(self, unit_id: str) -> str:
        """A unit, with its liaison, its measures and its timeline."""
        return self._page("units", unit_id)

    def submission(self, submission_id: str) -> str:
        """A submission as its unit sees it (state, reviewers' comment, evidence)."""
        return self._page("submissions", submission_id)

    def unit_submissions(self, unit_id: str) -> str:
        """Where a unit's liaison sees what is missing and reports it (我的任务)."""
        return self._page("tasks")

    def evidence(self, submission_id: str) -> str:
        """A submission's page, where its evidence is uploaded."""
        return self._page("submissions", submission_id, fragment="upload")

    def review_item(self, submission_id: str) -> str:
        """A submission selected in the review queue."""
        return self._page("queue", fragment=submission_id)

    def review_queue(self) -> str:
        """The review queue."""
        return self._page("queue")

    def inspection(self, inspection_id: str) -> str:
        """An inspection record."""
        return self._page("inspections", inspection_id)

    def supervision(self, supervision_id: str) -> str:
        """A supervision case (the unit answers it there)."""
        return self._page("supervisions", supervision_id)

    def circular(self, circular_id: str) -> str:
        """A published circular, with its files."""
        return self._page("circulars", circular_id)
