"""Login throttling per username and per client address, lockout and its lifting, hashing bound, password strength."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.intake import identity
from services.intake.auth_api import install_identity
from shared.auth import ADMIN
from tests.auth.support import bearer, intake_context

GOOD = "correct horse battery"


class MovableClock:
    """A clock the test moves instead of sleeping."""

    def __init__(self) -> None:
        self.at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def world(tmp_path):
    ctx = intake_context(
        tmp_path,
        auth_free_failures=3,
        auth_ip_free_failures=8,
        auth_backoff_base_s=2,
        auth_lockout_failures=6,
        auth_lockout_s=600,
    )
    clock = MovableClock()
    ctx.clock = clock
    app = FastAPI()
    install_identity(app, ctx)
    for name, role in (("wangfang", ADMIN), ("zhaoqiang", "reviewer")):
        identity.create_user(
            identity.UserCreate(username=name, display_name=name.title(), role=role, password=GOOD),
            ctx=ctx,
            principal=None,
        )
    with TestClient(app) as client:
        yield ctx, clock, client


def login(client, username: str, password: str = GOOD):
    return client.post("/auth/login", json={"username": username, "password": password})


def audit_actions(ctx) -> list[str]:
    with ctx.db.session() as uow:
        return [row.action for row in uow.query(identity.AUDIT).order_by(identity.AUDIT.c.id)]


def test_wrong_passwords_back_off_exponentially_with_retry_after(world):
    _ctx, clock, client = world
    assert [login(client, "zhaoqiang", "wrong password").status_code for _ in range(3)] == [401, 401, 401]
    throttled = login(client, "zhaoqiang")  # even the right password waits its turn
    assert throttled.status_code == 429 and throttled.json()["code"] == "login_throttled"
    assert throttled.headers["retry-after"] == "2" and "分钟后可再试" in throttled.json()["message"]
    clock.advance(2)
    assert login(client, "zhaoqiang", "wrong password").status_code == 401
    assert login(client, "zhaoqiang").headers["retry-after"] == "4"  # doubled
    clock.advance(4)
    assert (
        login(client, "zhaoqiang").status_code == 200
    )  # the right password, after waiting, works and resets
    assert login(client, "zhaoqiang", "wrong password").status_code == 401
    assert login(client, "zhaoqiang").status_code == 200


def test_unknown_usernames_are_throttled_alike(world):
    _ctx, _clock, client = world
    answers = [login(client, "nobody-here", "wrong password").status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]


def test_repeated_failures_lock_the_username_until_an_admin_lifts_it(world):
    ctx, clock, client = world
    for _ in range(6):
        clock.advance(100)  # wait out each back-off (well inside the failure window)
        assert login(client, "zhaoqiang", "wrong password").status_code == 401
    clock.advance(120)
    locked = login(client, "zhaoqiang")
    assert locked.status_code == 429 and locked.json()["code"] == "account_locked"
    assert 0 < int(locked.headers["retry-after"]) <= 600
    assert "auth.locked" in audit_actions(ctx)
    admin = bearer(login(client, "wangfang").json()["access_token"])
    listed = client.get("/auth/lockouts", headers=admin).json()
    assert [(row["kind"], row["subject"], row["failures"]) for row in listed if row["locked_until"]] == [
        ("user", "zhaoqiang", 6)
    ]
    assert client.get("/auth/lockouts", headers=bearer(issue_reviewer(ctx))).status_code == 403
    assert client.delete("/auth/lockouts/zhaoqiang", headers=admin).status_code == 204
    assert audit_actions(ctx)[-1] == "auth.unlocked"
    assert client.delete("/auth/lockouts/zhaoqiang", headers=admin).status_code == 404
    assert login(client, "zhaoqiang").status_code == 200


def test_a_lockout_ends_by_itself(world):
    _ctx, clock, client = world
    for _ in range(6):
        clock.advance(100)
        login(client, "zhaoqiang", "wrong password")
    assert login(client, "zhaoqiang").status_code == 429
    clock.advance(601)
    assert login(client, "zhaoqiang").status_code == 200


def test_one_address_guessing_many_usernames_is_throttled(world):
    _ctx, _clock, client = world
    answers = [login(client, f"user{n}", "wrong password").status_code for n in range(9)]
    assert answers == [401] * 8 + [429]
    refused = login(client, "wangfang")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_hashing_is_bounded_and_a_starved_login_gets_503(tmp_path):
    ctx = intake_context(tmp_path, auth_max_concurrent_hashes=1, auth_hash_wait_s=0.2)
    slots = identity._hash_slots(1)
    assert slots.acquire(timeout=5)  # someone else is hashing
    try:
        app = FastAPI()
        install_identity(app, ctx)
        with TestClient(app) as client:
            busy = login(client, "anyone")
        assert busy.status_code == 503 and busy.json()["code"] == "busy" and busy.headers["retry-after"]
    finally:
        slots.release()
    running, peak, lock = [0], [0], threading.Lock()
    original = identity._hasher

    class Counting:
        def __getattr__(self, name):
            return getattr(original(), name)

        def verify(self, stored, password):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return original().verify(stored, password)
            finally:
                with lock:
                    running[0] -= 1

    identity._hasher.cache_clear()
    ctx2 = intake_context(tmp_path / "two", auth_max_concurrent_hashes=2, auth_ip_free_failures=100)
    counting = Counting()
    try:
        identity._hasher = lambda *_parameters: counting  # type: ignore[assignment]
        threads = [threading.Thread(target=lambda: _try_login(ctx2)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        identity._hasher = original  # type: ignore[assignment]
    assert 1 <= peak[0] <= 2


def _try_login(ctx) -> None:
    from shared.auth import issuer_from_settings

    with contextlib.suppress(Exception):  # 401 expected
        identity.login(
            identity.Login(username="nobody", password="x" * 12),
            ctx=ctx,
            issuer=issuer_from_settings(ctx.settings),
        )


def issue_reviewer(ctx) -> str:
    from shared.auth import issuer_from_settings

    return issuer_from_settings(ctx.settings).issue(subject="r", name="Reviewer", role="reviewer", ttl_s=600)


@pytest.mark.parametrize(
    "password, reason",
    [
        ("1234567890", "太简单"),
        ("password12", "太简单"),
        (" " * 10, "太短"),
        ("qwertyuiop", "太简单"),
        ("liuyang-liuyang", "用户名或姓名"),
        ("my-name-is-liuyang", "用户名或姓名"),
    ],
)
def test_weak_passwords_are_refused_with_the_rules_in_chinese(world, password, reason):
    _ctx, _clock, client = world
    admin = bearer(login(client, "wangfang").json()["access_token"])
    response = client.post(
        "/users",
        headers=admin,
        json={"username": "liuyang", "display_name": "刘洋", "role": "reviewer", "password": password},
    )
    assert response.status_code == 422 and response.json()["code"] == "weak_password", response.text
    assert reason in response.json()["message"] and "不能包含用户名或姓名" in response.json()["message"]
    assert "input" not in response.text  # the password is never echoed (the rules quote only fixed examples)
    created = client.post(
        "/users",
        headers=admin,
        json={
            "username": "liuyang",
            "display_name": "刘洋",
            "role": "reviewer",
            "password": "river lantern autumn",
        },
    )
    assert created.status_code == 201
