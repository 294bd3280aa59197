"""The hostile-input probes of issue #13, run against a fresh embedded platform: prints tried / handled / failed.

    python -m bench.probes

Each probe is what an attacker (or a buggy script) did in the issue; "handled" means the platform answered
as docs/security.md says (a 4xx in the problem envelope, nothing stored, nothing leaked, no flood).
"""

from __future__ import annotations

import stat
import struct
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

HUGE = 2**63
CAMPAIGN_FILE = Path(__file__).resolve().parents[1] / "deploy" / "campaigns" / "huaibei-2020.yaml"


def main() -> None:
    """Build the platform, run every probe, print the table."""
    from deploy.embedded import build_platform
    from shared.settings import Settings

    with tempfile.TemporaryDirectory(prefix="probes-") as folder:
        platform = build_platform(
            Settings(data_dir=Path(folder), outbox_poll_s=0.1, bus_retry_delays_ms=(50, 100))
        )
        with TestClient(platform.app) as client:
            rows = Probes(platform, client, Path(folder)).run()
    width = max(len(name) for name, *_ in rows)
    print(f"{'probe':<{width}}  tried  handled  failed")
    for name, tried, handled in rows:
        print(f"{name:<{width}}  {tried:>5}  {handled:>7}  {tried - handled:>6}")
    total, ok = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total':<{width}}  {total:>5}  {ok:>7}  {total - ok:>6}")


class Probes:
    """One world: an admin, the Huaibei campaign, a liaison of 相山区 (XSQ) and one of its submissions."""

    def __init__(self, platform, client: TestClient, folder: Path) -> None:
        from services.intake import identity
        from services.intake.models import Unit
        from shared.auth import UNIT, issuer_from_settings

        self.platform, self.client, self.folder = platform, client, folder
        intake = platform.contexts["intake"]
        identity.create_user(
            identity.UserCreate(
                username="probe-admin", display_name="王芳", role="admin", password="river lantern autumn"
            ),
            ctx=intake,
            principal=None,
        )
        self.admin = {
            "Authorization": f"Bearer {self.login('probe-admin', 'river lantern autumn').json()['access_token']}"
        }
        loaded = client.post(
            "/intake/campaigns",
            content=CAMPAIGN_FILE.read_bytes(),
            headers={**self.admin, "Content-Type": "application/yaml"},
        )
        assert loaded.status_code == 201, loaded.text
        with intake.db.session() as uow:
            self.unit = uow.scalar(select(Unit).where(Unit.code == "XSQ"))
            path = identity.unit_path_of(uow, self.unit.id)
        token = issuer_from_settings(intake.settings).issue(
            subject="probe-liaison", name="李明", role=UNIT, ttl_s=3600, unit_id=self.unit.id, unit_path=path
        )
        self.liaison = {"Authorization": f"Bearer {token}"}
        created = client.post(
            "/intake/submissions",
            headers=self.admin,
            json={"unit_id": self.unit.id, "measure_code": "M1", "title": "召开专题会议"},
        )
        self.submission = created.json()["id"]
        _wait(
            lambda: (
                client.get(
                    f"/evidence/submissions/{self.submission}/evidence", headers=self.admin
                ).status_code
                == 200
            )
        )

    def login(self, username: str, password: str):
        """POST /intake/auth/login."""
        return self.client.post("/intake/auth/login", json={"username": username, "password": password})

    def run(self) -> list[tuple[str, int, int]]:
        """(probe, tried, handled) for every probe."""
        return [
            self.huge_integers(),
            self.periods(),
            self.liaison_leak(),
            self.uploads(),
            self.brute_force(),
            self.weak_passwords(),
            self.secret_echo(),
            self.docs_pages(),
            self.file_modes(),
            self.mail_flood(),
        ]

    def problem(self, response, status: int | None = None) -> bool:
        """A 4xx in the envelope (of that status)."""
        body = response.json() if response.headers.get("content-type") == "application/problem+json" else {}
        return (
            400 <= response.status_code < 500
            and (status is None or response.status_code == status)
            and bool(body.get("code") and body.get("message") and body.get("request_id"))
        )

    def huge_integers(self):
        paths = [
            f"{prefix}{route}?offset={HUGE}"
            for prefix, route in (
                ("/intake", "/users"),
                ("/intake", "/units"),
                ("/intake", "/submissions"),
                ("/intake", "/campaigns/huaibei-2020/units"),
                ("/review", "/queue"),
                ("/review", "/inspections"),
                ("/review", "/samplings"),
                ("/review", "/supervisions"),
                ("/review", "/circulars"),
                ("/review", f"/submissions/{self.submission}/comments"),
                ("/review", f"/units/{self.unit.id}/timeline"),
                ("/notification", "/deliveries"),
                ("/notification", "/audit-log"),
                ("/intake", "/audit-log"),
                ("/review", "/audit-log"),
            )
        ]
        paths.append(f"/intake/campaigns/huaibei-2020/versions/{HUGE}")
        answers = [self.client.get(path, headers=self.admin) for path in paths]
        answers.append(
            self.client.post(
                f"/review/submissions/{self.submission}/approve", headers=self.admin, json={"version": HUGE}
            )
        )
        return (
            "500 on integers ≥ 2^63 (15 list routes, a version, a body)",
            len(answers),
            sum(self.problem(a, 422) for a in answers),
        )

    def periods(self):
        campaign = self.client.get("/intake/campaigns/huaibei-2020", headers=self.admin).json()["id"]
        answers = [
            self.client.post(
                "/review/circulars", headers=self.admin, json={"campaign_id": campaign, "period": p}
            )
            for p in ("0000", "0000-Q1", "0000-H1", "0000-01", "9999-12")
        ]
        return "500 on circular periods", len(answers), sum(self.problem(a, 422) for a in answers)

    def liaison_leak(self):
        others = ("wang.jing@example.org", "chen.gang@example.org")
        answers = [
            self.client.get(path, headers=self.liaison)
            for path in ("/intake/campaigns/huaibei-2020", "/intake/campaigns/huaibei-2020/versions/1")
        ]
        handled = sum(a.status_code == 200 and not any(email in a.text for email in others) for a in answers)
        return "other units' liaisons in campaign definitions", len(answers), handled

    def uploads(self):
        from tests.evidence_storage import media

        jpeg = media.photo(3)
        ftyp = media.ftyp()
        bodies = {
            "jpeg+zip": jpeg + media.plain_zip(),
            "mp4 box 0xFFFFFFF0": ftyp + media.moov() + struct.pack(">I4s", 0xFFFFFFF0, b"mdat") + bytes(64),
            "mp4 box size 3": ftyp + media.moov() + struct.pack(">I4s", 3, b"free") + bytes(64),
            "mp4 box 2^63": ftyp + media.moov() + struct.pack(">I4sQ", 1, b"mdat", 2**63) + bytes(64),
            "mp4 nested trak": ftyp + media.box(b"moov", struct.pack(">I4s", 4000, b"trak") + bytes(32)),
            "mp4 no moov": ftyp + media.box(b"mdat", bytes(4096)),
            "pdf OpenAction JS": _pdf(
                b"<< /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>"
            ),
        }
        url = f"/evidence/submissions/{self.submission}/evidence"
        answers = [
            self.client.post(
                url,
                params={"filename": f"{name}.bin"},
                content=body,
                headers={**self.admin, "Content-Type": "application/octet-stream"},
            )
            for name, body in bodies.items()
        ]
        started = time.monotonic()
        answers.append(
            self.client.post(
                url,
                params={"filename": "huge.mp4"},
                content=b"",
                headers={**self.admin, "Content-Type": "video/mp4", "Content-Length": "100000000000"},
            )
        )
        quick = time.monotonic() - started < 10
        stored = self.client.get(url, headers=self.admin).json()
        handled = sum(self.problem(a) for a in answers) - (0 if quick else 1) - (1 if stored else 0)
        return "polyglot / mp4 / pdf / Content-Length uploads", len(answers), max(handled, 0)

    def brute_force(self):
        from services.intake import identity

        identity.create_user(
            identity.UserCreate(
                username="zhaoqiang", display_name="赵强", role="reviewer", password="quiet meadow lantern"
            ),
            ctx=self.platform.contexts["intake"],
            principal=self.admin_principal(),
        )
        answers = [self.login("zhaoqiang", f"wrong password {n}") for n in range(50)]
        refused = sum(a.status_code == 429 and bool(a.headers.get("retry-after")) for a in answers)
        right = self.login("zhaoqiang", "quiet meadow lantern")
        handled = (refused >= 40) + (right.status_code == 429)
        return "50 wrong passwords, then the right one", 2, handled

    def weak_passwords(self):
        answers = [
            self.client.post(
                "/intake/users",
                headers=self.admin,
                json={
                    "username": "liuyang",
                    "display_name": "刘洋",
                    "role": "reviewer",
                    "password": password,
                },
            )
            for password in ("1234567890", "password12", " " * 10, "liuyang123456")
        ]
        return (
            "weak passwords (1234567890, password12, spaces, own name)",
            len(answers),
            sum(self.problem(a, 422) and a.json()["code"] == "weak_password" for a in answers),
        )

    def secret_echo(self):
        secret = "my-secret-password-123"
        answers = [
            self.client.post("/intake/users", headers=self.admin, json={"username": "x", "password": secret}),
            self.client.post("/intake/auth/login", json={"password": secret}),
        ]
        return (
            "422 echoing passwords",
            len(answers),
            sum(self.problem(a, 422) and secret not in a.text for a in answers),
        )

    def docs_pages(self):
        answers = [
            self.client.get(f"{prefix}/{page}")
            for prefix in ("/intake", "/evidence", "/review", "/notification")
            for page in ("docs", "redoc")
        ]
        handled = sum(
            a.status_code == 200
            and "cdn" not in a.text.lower()
            and "script-src 'self'" in a.headers.get("content-security-policy", "")
            for a in answers
        )
        return "docs pages from a CDN, without CSP", len(answers), handled

    def file_modes(self):
        files = sorted(self.folder.glob("*.db"))
        handled = sum(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        return "SQLite files readable by others", len(files), handled

    def mail_flood(self):
        from services.notification.models import Delivery

        url = f"/evidence/submissions/{self.submission}/evidence"
        for n in range(16):
            self.client.post(
                url,
                params={"filename": f"第{n}张.jpg"},
                content=b"not a photo at all " * 50,
                headers={**self.admin, "Content-Type": "image/jpeg"},
            )
        ctx = self.platform.contexts["notification"]

        def refusals_mailed() -> int:
            with ctx.db.session() as uow:
                return len(
                    uow.scalars(
                        select(Delivery.id).where(
                            Delivery.unit_id == self.unit.id, Delivery.event_type.like("evidence.rejected%")
                        )
                    ).all()
                )

        _wait(lambda: refusals_mailed() >= 1)
        time.sleep(3)  # let every refusal event be consumed
        return "16 refusals → mails to the liaison within the hour", 1, int(refusals_mailed() == 1)

    def admin_principal(self):
        from shared.auth import Principal

        return Principal(id="probe-admin", name="王芳", role="admin")


def _pdf(catalog: bytes) -> bytes:
    body = b"1 0 obj\n%s\nendobj\n" % catalog
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def _wait(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the platform did not get there in time")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
