"""`make demo`: the Huaibei campaign as if it were under way today, in the embedded platform's state (DATA_DIR).

The 2020 plan is loaded with every date moved by the same number of days (recorded on the campaign as its
`shift`), so that today falls in the second week of the publicity window and inside the inspection window.
Then, through the public APIs as real users would: invented people at example.org log in, a few units report
measures with photos, videos and documents made on the spot (deploy/samples.py), one unit copies another's
photo, a reviewer approves, returns and rejects, an inspector records an inspection and a supervision is opened.
Afterwards `make run` shows a campaign in progress: dashboard, review queue and ranking.

    python -m deploy.demo [--data-dir var] [--password ...]

Run it while `make run` is stopped (both would write the same SQLite files). Loading it twice changes nothing.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from fastapi.testclient import TestClient

from deploy import samples
from services.intake import identity
from services.intake.definition import canonical_json, parse_definition
from shared.settings import Settings

CAMPAIGN_FILE = Path(__file__).resolve().parent / "campaigns" / "huaibei-2020.yaml"
DEMO_CODE = "huaibei-demo"
DEMO_NAME = "淮北市网上信访宣传月（演示）"
DAY_OF_WINDOW = 13  # today is the 14th day of the publicity window: two days into the inspection window
DEFAULT_PASSWORD = "huaibei-demo-2020"
STAFF = (
    ("demo-admin", "王芳", "admin"),
    ("reviewer", "赵强", "reviewer"),
    ("inspector", "孙丽", "inspector"),
)
LIAISONS = {
    "XSQ": "xsq",
    "DJQ": "djq",
    "LSQ": "lsq",
    "SXX": "sxx",
    "GAJ": "gaj",
    "RSJ": "rsj",
    "JYJ": "jyj",
    "WJW": "wjw",
}


@dataclass(frozen=True)
class Report:
    """One submission of the demo: who reports which measure, with what files, and what the reviewer decides."""

    unit: str
    measure: str | None
    title: str
    day: int  # day of the publicity window the activity was held on
    files: tuple[str, ...]  # photo:<seed>, copy:<seed> (another unit's photo), video, hevc, docx
    decision: tuple[str, str | float] | None = (
        None  # ("approve", score), ("return", comment), ("reject", reason)
    )
    kind: str = "measure"


REPORTS = (
    Report("XSQ", "M1", "召开专题会议传达部署宣传月工作", 1, ("photo:11", "docx"), ("approve", 95)),
    Report(
        "XSQ", "M2", "区信访接待大厅设置网上信访宣传角", 3, ("photo:12", "photo:13", "video"), ("approve", 90)
    ),
    Report("XSQ", "M5", "人民广场悬挂宣传横幅", 5, ("photo:14", "photo:15"), ("approve", 100)),
    Report("XSQ", "M7", "深入社区开展巡回宣讲", 9, ("photo:16", "hevc")),
    Report("DJQ", "M1", "召开宣传月工作部署会", 2, ("photo:21",), ("approve", 85)),
    Report(
        "DJQ",
        "M5",
        "主要路口悬挂宣传横幅",
        6,
        ("copy:14", "photo:22"),
        ("return", "第一张照片与相山区信访局的照片相同，请补充本单位现场照片"),
    ),
    Report("DJQ", "M3", "制作宣传展板", 7, ("photo:23",)),
    Report("LSQ", "M1", "召开专题会议", 2, ("photo:31",), ("approve", 80)),
    Report(
        "LSQ",
        "M4",
        "发放宣传页",
        8,
        ("photo:32", "photo:33"),
        ("reject", "照片内容为往年活动，与本次宣传月无关"),
    ),
    Report("SXX", "M2", "县信访局宣传角", 4, ("photo:41", "photo:42"), ("approve", 75)),
    Report("SXX", "M6", "LED 电子屏滚动播放宣传标语", 10, ("video",)),
    Report("GAJ", "M3", "内部宣传栏更新", 5, ("photo:51",), ("approve", 90)),
    Report("RSJ", "M1", "召开专题会议", 3, ("photo:61",)),
    Report(
        "JYJ",
        "M5",
        "校园内悬挂宣传横幅",
        6,
        ("photo:71", "photo:72"),
        ("return", "横幅照片看不清标语内容，请补充近景照片"),
    ),
    Report("WJW", None, "宣传月活动阶段性总结", 12, ("docx",), kind="summary_report"),
)


def shift_days(today: date, publicity_start: date) -> int:
    """Days to move the plan so that today is day DAY_OF_WINDOW (counting from 0) of its publicity window."""
    return (today - timedelta(days=DAY_OF_WINDOW) - publicity_start).days


class Demo:
    """Drives the embedded platform through its HTTP APIs, as the campaign's people would."""

    def __init__(self, http: TestClient, *, password: str, today: date, out: TextIO) -> None:
        self.http, self.password, self.today, self.out = http, password, today, out
        self.tokens: dict[str, str] = {}
        self.photos: dict[int, bytes] = {}  # by seed: a `copy:` item uploads the very bytes another unit did

    def call(self, who: str, method: str, path: str, *, expect: int | tuple[int, ...] = (200, 201), **kwargs):
        """One API call as user who; fails loudly on an unexpected status."""
        response = self.http.request(
            method,
            path,
            headers={"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})},
            **kwargs,
        )
        wanted = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in wanted:
            raise RuntimeError(f"{method} {path} as {who}: HTTP {response.status_code} {response.text[:500]}")
        return (
            response.json()
            if response.content and "json" in response.headers.get("content-type", "")
            else None
        )

    def login(self, username: str) -> None:
        """Log in through the API (the console does the same)."""
        response = self.http.post(
            "/intake/auth/login", json={"username": username, "password": self.password}
        )
        if response.status_code != 200:
            raise RuntimeError(f"login of {username} failed: {response.text[:300]}")
        self.tokens[username] = response.json()["access_token"]

    def load_campaign(self) -> tuple[str, int]:
        """The shifted plan and its reference materials; returns (campaign id, shift in days)."""
        plan = parse_definition(CAMPAIGN_FILE.read_text(encoding="utf-8"))
        days = shift_days(self.today, plan.windows.publicity.start)
        demo = plan.shifted(
            days,
            code=DEMO_CODE,
            name=DEMO_NAME,
            note=(
                f"演示数据：2020 年方案的全部日期整体平移 {days} 天，使宣传期正在进行（make demo，{self.today.isoformat()}）"
            ),
        )
        loaded = self.call(
            "demo-admin",
            "POST",
            "/intake/campaigns",
            content=canonical_json(demo).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        campaign_id = loaded["campaign_id"]
        for material in demo.materials:
            if material.file:
                path = CAMPAIGN_FILE.parent / material.file
                self.call(
                    "demo-admin",
                    "PUT",
                    f"/intake/campaigns/{campaign_id}/materials/{material.code}",
                    params={"filename": path.name, "title": material.title},
                    content=path.read_bytes(),
                    headers={"Content-Type": "application/octet-stream"},
                )
        return campaign_id, days

    def report(self, spec: Report, unit_id: str, start: date) -> str:
        """A liaison's submission with its evidence; returns the submission id."""
        who = LIAISONS[spec.unit]
        held_on = start + timedelta(days=spec.day)
        body = {
            "unit_id": unit_id,
            "kind": spec.kind,
            "title": spec.title,
            "held_on": held_on.isoformat(),
            "place": "淮北市",
            "participants": 20 + spec.day * 7,
            "topics": ["T1", "T2"],
        }
        if spec.measure:
            body["measure_code"] = spec.measure
        submission = self.call(who, "POST", "/intake/submissions", json=body)
        path = f"/evidence/submissions/{submission['id']}/evidence"
        headers = {"Authorization": f"Bearer {self.tokens[who]}", "Content-Type": "application/octet-stream"}
        for n, item in enumerate(spec.files):
            data, name = _file(item, held_on, n, self.photos)

            def uploaded(data: bytes = data, name: str = name) -> bool:
                return (
                    self.http.post(path, params={"filename": name}, content=data, headers=headers).status_code
                    == 201
                )

            # evidence_storage learns of the submission from an event: a fresh one may answer 404 for a moment
            _until(uploaded, what=f"the upload of {name}")
        return submission["id"]

    def decide(self, submission_id: str, decision: tuple[str, str | float]) -> None:
        """The reviewer's decision (no claim needed: deciding a pending version is enough)."""
        action, value = decision
        body = {"approve": {"score": value}, "return": {"comment": value}, "reject": {"reason": value}}[
            action
        ]
        path = f"/review/submissions/{submission_id}/{action}"
        auth = {"Authorization": f"Bearer {self.tokens['reviewer']}"}
        _until(
            lambda: self.http.post(path, json=body, headers=auth).status_code == 200,
            what=f"{action} of {submission_id}",
        )


def load_demo(
    settings: Settings,
    *,
    password: str = DEFAULT_PASSWORD,
    today: date | None = None,
    out: TextIO = sys.stdout,
) -> str | None:
    """Load the demo into the platform's state under settings; returns the campaign id (None if already there)."""
    from deploy.embedded import build_platform

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    platform = build_platform(settings)
    intake = platform.contexts["intake"]
    with TestClient(platform.app) as http:  # its lifespan runs the workers, as `make run` does
        existing = http.get("/intake/campaigns/" + DEMO_CODE, headers=_admin_headers(intake, http, password))
        if existing.status_code == 200:
            print(f"演示活动已加载（{existing.json()['name']}），未重复加载。", file=out)
            return None
        zone = parse_definition(CAMPAIGN_FILE.read_text(encoding="utf-8")).zone
        demo = Demo(http, password=password, today=today or datetime.now(zone).date(), out=out)
        for username, _, _ in STAFF:
            demo.login(username)
        campaign_id, days = demo.load_campaign()
        units = {
            u["code"]: u
            for u in demo.call(
                "demo-admin", "GET", f"/intake/campaigns/{campaign_id}/units", params={"limit": 1000}
            )
        }
        for code, username in LIAISONS.items():  # each unit's liaison gets a login, created by the admin
            demo.call(
                "demo-admin",
                "POST",
                "/intake/users",
                json={
                    "username": username,
                    "display_name": units[code].get("liaison_name") or code,
                    "role": "unit",
                    "unit_id": units[code]["id"],
                    "password": password,
                },
                expect=(201, 409),
            )
            demo.login(username)
        start = parse_definition(
            CAMPAIGN_FILE.read_text(encoding="utf-8")
        ).windows.publicity.start + timedelta(days=days)
        decided = 0
        for spec in REPORTS:
            submission_id = demo.report(spec, units[spec.unit]["id"], start)
            if spec.decision:
                demo.decide(submission_id, spec.decision)
                decided += 1
        inspection = demo.call(
            "inspector",
            "POST",
            "/review/inspections",
            json={
                "campaign_id": campaign_id,
                "unit_id": units["DJQ"]["id"],
                "method": "on_site",
                "inspected_on": demo.today.isoformat(),
                "measures_verified": ["M1", "M5"],
                "residents_asked": 10,
                "residents_aware": 6,
                "residents_able": 4,
                "staff_tested": 5,
                "staff_proficient": 4,
                "findings": "宣传角已设置，横幅悬挂位置偏僻，群众知晓率一般。",
                "problems": ["横幅悬挂位置偏僻", "宣传页发放数量不足"],
            },
        )
        demo.call(
            "reviewer",
            "POST",
            "/review/supervisions",
            json={
                "campaign_id": campaign_id,
                "unit_id": units["RSJ"]["id"],
                "level": "yellow",
                "method": "phone",
                "reason": "宣传月已过半，仅报送一项宣传措施，请加快落实其余措施并及时报送佐证资料",
            },
        )
        _until(
            lambda: (
                len(demo.call("reviewer", "GET", "/review/queue", params={"campaign_id": campaign_id})) >= 1
            ),
            what="the review queue to fill",
        )
        _until(
            lambda: _renditions_done(demo, units), timeout=300, what="the web-playable copy of the HEVC video"
        )
        _print_summary(out, settings, campaign_id, days, len(REPORTS), decided, inspection["id"], password)
    return campaign_id


def _admin_headers(intake, http: TestClient, password: str) -> dict[str, str]:
    """Create the demo's users once (the admin through intake's use case, like `make admin`); the admin's token."""
    created_any = False
    for username, name, role in STAFF:
        created_any |= _ensure_user(intake, username, name, role, None, password)
    if created_any:
        token = http.post("/intake/auth/login", json={"username": "demo-admin", "password": password}).json()[
            "access_token"
        ]
        return {"Authorization": f"Bearer {token}"}
    response = http.post("/intake/auth/login", json={"username": "demo-admin", "password": password})
    if response.status_code != 200:
        raise SystemExit("无法以 demo-admin 登录：演示账号已存在但密码不同（--password）")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _ensure_user(intake, username: str, name: str, role: str, unit_id: str | None, password: str) -> bool:
    """Create a user unless it exists; True if created."""
    from shared.http import ApiError

    try:
        identity.create_user(
            identity.UserCreate(
                username=username, display_name=name, role=role, unit_id=unit_id, password=password
            ),
            ctx=intake,
            principal=None,
        )
    except ApiError as exc:
        if exc.status_code == 409:
            return False
        raise
    return True


def _renditions_done(demo: Demo, units: dict) -> bool:
    rows = demo.call(
        "demo-admin", "GET", "/intake/submissions", params={"unit_id": units["XSQ"]["id"], "limit": 100}
    )
    for row in rows:
        for evidence in demo.call("demo-admin", "GET", f"/evidence/submissions/{row['id']}/evidence"):
            if evidence.get("rendition") and evidence["rendition"]["state"] in ("pending", "rendering"):
                return False
    return True


def _file(item: str, held_on: date, n: int, photos: dict[int, bytes]) -> tuple[bytes, str]:
    """The bytes and filename of one demo file (photos remembered by seed, so a copy is the same bytes)."""
    taken = f"{held_on:%Y:%m:%d} {9 + n:02d}:30:00"
    kind, _, seed = item.partition(":")
    if kind == "copy":
        return photos[int(seed)], f"现场照片{n + 1}.jpg"
    if kind == "photo":
        photos[int(seed)] = samples.photo(int(seed), taken=taken)
        return photos[int(seed)], f"现场照片{n + 1}.jpg"
    recorded = f"{held_on.isoformat()}T02:00:00Z"
    if kind == "video":
        return samples.video_clip(3.0, (640, 360), created=recorded), f"现场视频{n + 1}.mp4"
    if kind == "hevc":  # as an iPhone records it: browsers cannot play it, the worker makes an H.264 copy
        return samples.video_clip(
            3.0, (640, 360), codec="hevc", container="mov", created=recorded
        ), f"手机视频{n + 1}.mov"
    return samples.word_document(
        "网上信访宣传月工作情况",
        [
            f"{held_on:%Y年%m月%d日}，本单位召开会议部署网上信访宣传月工作。",
            "一、提高认识，加强领导。二、突出重点，注重实效。三、及时总结，报送材料。",
        ],
    ), f"工作材料{n + 1}.docx"


def _until(check: Callable[[], bool], *, timeout: float = 60, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _print_summary(
    out: TextIO,
    settings: Settings,
    campaign_id: str,
    days: int,
    reports: int,
    decided: int,
    inspection_id: str,
    password: str,
) -> None:
    users = ", ".join([u for u, _, _ in STAFF] + list(LIAISONS.values()))
    print(
        f"""演示数据已加载到 {settings.data_dir}：
  活动：{DEMO_NAME}（{DEMO_CODE}，{campaign_id}），2020 年方案的日期整体平移 {days} 天，宣传期正在进行
  {reports} 份报送（{decided} 份已审核：通过、退回、驳回），1 次检查（{inspection_id}），1 个督办，1 对重复照片
  账号（密码均为 {password}）：{users}
现在运行 make run，打开 http://{settings.host}:{settings.port}/ 用上面的账号登录。""",
        file=out,
    )


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Load the demo into DATA_DIR (or --data-dir); refuses while something serves on HOST:PORT."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo", description="加载演示数据（进行中的淮北宣传月）"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="embedded state folder (default: DATA_DIR)"
    )
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="password of every demo account")
    args = parser.parse_args(argv)
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    if _port_in_use(settings.host, settings.port):
        print(
            f"{settings.host}:{settings.port} 上有服务在运行（make run？）：请先停止它，再运行 make demo。",
            file=sys.stderr,
        )
        return 1
    load_demo(settings, password=args.password)
    return 0


if __name__ == "__main__":
    sys.exit(main())
