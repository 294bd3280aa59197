"""The console's browser tests: a live embedded platform over real HTTP, Chromium, logins, photos, screenshots."""

from __future__ import annotations

import io
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / "artifacts" / "console"
CAMPAIGN_FILE = REPO / "deploy" / "campaigns" / "huaibei-2020.yaml"
PASSWORD = "console-test-password"
DESKTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


class LiveServer:
    """uvicorn serving an ASGI app on a free port in a background thread (lifespan included)."""

    def __init__(self, app) -> None:
        import uvicorn

        from deploy.processes import free_port

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", access_log=False
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="console-live-server", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LiveServer:
        """Start serving and wait until uvicorn says it has started."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (running the lifespan's shutdown) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass
class World:
    """A served platform with the Huaibei campaign loaded, and a unit and a reviewer login."""

    url: str
    admin: httpx.Client
    campaign_id: str
    units: dict[str, dict]  # by unit code
    users: dict[str, str] = field(default_factory=dict)  # role → username
    tokens: dict[str, str] = field(default_factory=dict)  # username → bearer token

    def page_url(self, path: str) -> str:
        """Absolute URL of a console page."""
        return f"{self.url}/console{path}"

    def client_for(self, username: str) -> httpx.Client:
        """An HTTP client logged in as one of the world's users (through the login API, once per user)."""
        if username not in self.tokens:
            token = httpx.post(
                f"{self.url}/intake/auth/login", json={"username": username, "password": PASSWORD}, timeout=30
            )
            assert token.status_code == 200, token.text
            self.tokens[username] = token.json()["access_token"]
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.tokens[username]}"}
        )


def build_world(url: str, admin_token: str) -> World:
    """Load the campaign and create a liaison login for 相山区信访局 (XSQ) and a reviewer login, through the APIs."""
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60)
    loaded = admin.post(
        "/intake/campaigns", content=CAMPAIGN_FILE.read_bytes(), headers={"Content-Type": "application/yaml"}
    )
    assert loaded.status_code == 201, loaded.text
    campaign_id = loaded.json()["campaign_id"]
    rows = admin.get(f"/intake/campaigns/{campaign_id}/units").json()
    units = {row["code"]: row for row in rows}
    world = World(url=url, admin=admin, campaign_id=campaign_id, units=units)
    for role, username, name, unit in (
        ("unit", "liming", "李明", units["XSQ"]["id"]),
        ("reviewer", "zhaoqiang", "赵强", None),
        ("inspector", "sunli", "孙丽", None),
    ):
        created = admin.post(
            "/intake/users",
            json={
                "username": username,
                "display_name": name,
                "role": role,
                "unit_id": unit,
                "password": PASSWORD,
            },
        )
        assert created.status_code == 201, created.text
        world.users[role] = username
    return world


def photo(path: Path, seed: int, size: tuple[int, int] = (640, 480), noise: bool = False) -> Path:
    """Write a distinct JPEG photo (a coloured scene; noise makes it large) and return its path."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(40, 220) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.rectangle(
            [x, y, x + rng.randrange(40, 200), y + rng.randrange(30, 150)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    if noise:
        image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    path.write_bytes(buffer.getvalue())
    return path


class Shots:
    """Numbered screenshots of one test under artifacts/console/<test>/."""

    def __init__(self, test_name: str) -> None:
        self.folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def __call__(self, page, name: str) -> Path:
        """Save a full-page screenshot of page as NN-name.png."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def login(page, world: World, username: str) -> None:
    """Log in through the console's login page and wait for the role's first page."""
    page.goto(world.page_url("/login"))
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/console/(?!login).*"))
    page.wait_for_selector("body[data-ready='1']")


def reload_until(page, check, *, timeout: float = 20.0, what: str = "the page to show it") -> None:
    """Reload the page until check(page) is true (the platform's effects arrive through events)."""
    deadline = time.monotonic() + timeout
    while True:
        page.wait_for_selector("body[data-ready='1']")
        if check(page):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)
        page.reload()
