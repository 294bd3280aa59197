"""Identity in intake: users, login, API keys and their exchange, the first-admin CLI."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.intake import identity, identity_cli
from services.intake.auth_api import install_identity
from services.intake.models import Unit
from shared.auth import ADMIN, UNIT, TokenError, TokenVerifier, load_keys
from shared.clock import FixedClock
from shared.settings import Settings
from tests.auth.support import bearer, intake_context, make_unit

PASSWORD = "correct horse battery"


@pytest.fixture
def ctx(tmp_path):
    context = intake_context(tmp_path)
    yield context
    context.db.dispose()


@pytest.fixture
def client(ctx):
    app = FastAPI()
    install_identity(app, ctx)
    with TestClient(app) as test_client:
        yield test_client


def add_user(ctx, username, role=ADMIN, unit_id=None, password=PASSWORD):
    return identity.create_user(
        identity.UserCreate(
            username=username, display_name=username.title(), role=role, unit_id=unit_id, password=password
        ),
        ctx=ctx,
        principal=None,
    )


def login(client, username, password=PASSWORD):
    return client.post("/auth/login", json={"username": username, "password": password})


def token_of(client, username, password=PASSWORD) -> dict:
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def audit_actions(ctx) -> list[str]:
    with ctx.db.session() as uow:
        return list(uow.scalars(select(identity.AUDIT.c.action).order_by(identity.AUDIT.c.id)))


def test_password_is_stored_as_argon2id(ctx):
    user = add_user(ctx, "wangfang")
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_new_hash_parameters_lock_no_one_out_and_the_next_login_rehashes(tmp_path):
    cheap = intake_context(tmp_path, auth_hash_memory_kib=8192, auth_hash_time_cost=1)
    add_user(cheap, "wangfang")
    cheap.db.dispose()
    stronger = intake_context(tmp_path, auth_hash_memory_kib=16384, auth_hash_time_cost=2)
    app = FastAPI()
    install_identity(app, stronger)
    with TestClient(app) as client:
        assert login(client, "wangfang").status_code == 200
        assert login(client, "wangfang", "wrong horse battery").status_code == 401
    with stronger.db.session() as uow:
        stored = uow.scalar(select(identity.User.password_hash).where(identity.User.username == "wangfang"))
    stronger.db.dispose()
    assert stored is not None and "$m=16384,t=2," in stored


def test_login_gives_a_token_that_names_the_user(client, ctx):
    add_user(ctx, "WangFang")  # usernames are case-insensitive
    response = login(client, "wangfang")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == ctx.settings.auth_token_ttl_s
    me = client.get("/auth/me", headers=bearer(body["access_token"])).json()
    assert (me["role"], me["name"], me["via"]) == (ADMIN, "Wangfang", "password")
    assert audit_actions(ctx) == ["user.created", "auth.login"]


def test_wrong_password_unknown_user_and_disabled_user_look_the_same(client, ctx):
    add_user(ctx, "wangfang")
    disabled = add_user(ctx, "zhaoqiang")
    with ctx.db.transaction() as uow:
        uow.get(identity.User, disabled.id).active = False
    answers = [
        login(client, "wangfang", "wrong password!"),
        login(client, "nobody", PASSWORD),
        login(client, "zhaoqiang"),
    ]
    assert {r.status_code for r in answers} == {401}
    assert (
        len({json.dumps({**r.json(), "request_id": None}) for r in answers}) == 1
    )  # only the request id differs
    body = answers[0].json()
    assert (body["code"], body["message"], body["message_en"]) == (
        "login_failed",
        "用户名或密码错误",
        "wrong username or password",
    )
    assert audit_actions(ctx).count("auth.login_failed") == 3


def test_unit_user_token_carries_the_unit_path(client, ctx):
    district = make_unit(ctx)
    township = make_unit(ctx, parent_id=district, name="任集街道")
    add_user(ctx, "liaison", role=UNIT, unit_id=township)
    me = client.get("/auth/me", headers=token_of(client, "liaison")).json()
    assert (me["role"], me["unit_id"], me["unit_path"]) == (UNIT, township, f"/{district}/{township}/")


def test_only_admins_manage_users(client, ctx):
    unit = make_unit(ctx)
    add_user(ctx, "admin")
    add_user(ctx, "reviewer", role="reviewer")
    admin, reviewer = token_of(client, "admin"), token_of(client, "reviewer")
    new_user = {
        "username": "liaison",
        "display_name": "李明",
        "role": "unit",
        "unit_id": unit,
        "password": PASSWORD,
    }
    assert client.post("/users", json=new_user).status_code == 401
    assert client.post("/users", json=new_user, headers=reviewer).status_code == 403
    assert client.get("/users", headers=reviewer).status_code == 403
    created = client.post("/users", json=new_user, headers=admin)
    assert created.status_code == 201 and "password_hash" not in created.json()
    assert client.post("/users", json=new_user, headers=admin).status_code == 409
    assert (
        client.post(
            "/users", json={**new_user, "username": "x1y", "unit_id": None}, headers=admin
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/users", json={**new_user, "username": "x2y", "password": "short"}, headers=admin
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/users", json={**new_user, "username": "x3y", "unit_id": "nope"}, headers=admin
        ).status_code
        == 404
    )
    assert [u["username"] for u in client.get("/users", headers=admin).json()] == [
        "admin",
        "liaison",
        "reviewer",
    ]


def test_api_key_is_shown_once_exchanged_and_revoked(client, ctx):
    unit = make_unit(ctx)
    add_user(ctx, "liaison", role=UNIT, unit_id=unit)
    liaison = token_of(client, "liaison")
    created = client.post(f"/units/{unit}/api-keys", json={"label": "上传脚本"}, headers=liaison)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("cek_") and len(key) > 40
    listed = client.get(f"/units/{unit}/api-keys", headers=liaison).json()
    assert [k["id"] for k in listed] == [created.json()["id"]] and "key" not in listed[0]
    with ctx.db.session() as uow:
        assert key not in {row.key_hash for row in uow.scalars(select(identity.ApiKey))}

    exchanged = client.post("/auth/token", headers={"X-API-Key": key})
    assert exchanged.status_code == 200
    assert exchanged.json()["expires_in"] == ctx.settings.auth_api_token_ttl_s
    script = bearer(exchanged.json()["access_token"])
    me = client.get("/auth/me", headers=script).json()
    assert (me["role"], me["unit_id"], me["via"]) == (UNIT, unit, "api_key")
    # a script's token cannot mint or revoke keys
    assert (
        client.post(f"/units/{unit}/api-keys", json={"label": "再来一个"}, headers=script).status_code == 403
    )

    revoked = client.delete(f"/api-keys/{created.json()['id']}", headers=liaison)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = client.post("/auth/token", headers={"X-API-Key": key})
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_api_key"
    assert client.post("/auth/token", headers={"X-API-Key": "cek_made_up_key"}).status_code == 401
    assert client.post("/auth/token").status_code == 422
    assert audit_actions(ctx)[-2:] == ["api_key.created", "api_key.revoked"]


def test_a_foreign_unit_cannot_see_or_touch_keys(client, ctx):
    own, foreign = make_unit(ctx), make_unit(ctx, name="濉溪县信访局")
    child = make_unit(ctx, parent_id=own, name="任集街道")
    add_user(ctx, "own", role=UNIT, unit_id=own)
    add_user(ctx, "foreign", role=UNIT, unit_id=foreign)
    add_user(ctx, "inspector", role="inspector")
    own_token, foreign_token = token_of(client, "own"), token_of(client, "foreign")
    key_id = client.post(f"/units/{own}/api-keys", json={"label": "脚本"}, headers=own_token).json()["id"]
    # a parent unit may manage keys of its subtree
    assert (
        client.post(f"/units/{child}/api-keys", json={"label": "子单位脚本"}, headers=own_token).status_code
        == 201
    )
    for method, path in (
        ("post", f"/units/{own}/api-keys"),
        ("get", f"/units/{own}/api-keys"),
        ("delete", f"/api-keys/{key_id}"),
    ):
        kwargs = {"json": {"label": "x"}} if method == "post" else {}
        response = getattr(client, method)(path, headers=foreign_token, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert client.get(f"/units/{own}/api-keys", headers=token_of(client, "inspector")).status_code == 403
    assert client.get(f"/units/{foreign}/api-keys", headers=token_of(client, "own")).status_code == 404


def test_tokens_expire(ctx, client):
    add_user(ctx, "wangfang")
    token = login(client, "wangfang").json()["access_token"]
    clock = FixedClock(ctx.clock.now())
    verifier = TokenVerifier(load_keys(ctx.settings).public_key, issuer=ctx.settings.auth_issuer, clock=clock)
    assert verifier.verify(token).role == ADMIN
    clock.advance(timedelta(seconds=ctx.settings.auth_token_ttl_s + 60))
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_cli_creates_the_first_admin(tmp_path, capsys):
    settings = Settings(data_dir=tmp_path)
    code = identity_cli.main(
        ["create-admin", "--username", "Admin", "--display-name", "王芳", "--password-stdin"],
        stdin=io.StringIO(PASSWORD + "\n"),
        settings=settings,
    )
    assert code == 0 and "已创建管理员 admin" in capsys.readouterr().out
    again = identity_cli.main(
        ["create-admin", "--username", "admin", "--password-stdin"],
        stdin=io.StringIO(PASSWORD + "\n"),
        settings=settings,
    )
    assert again == 1 and "用户名已存在" in capsys.readouterr().err
    short = identity_cli.main(
        ["create-admin", "--username", "other", "--password-stdin"],
        stdin=io.StringIO("short\n"),
        settings=settings,
    )
    assert short == 2 and "密码至少" in capsys.readouterr().err

    ctx = intake_context(tmp_path)
    try:
        app = FastAPI()
        install_identity(app, ctx)
        with TestClient(app) as client:
            assert client.get("/auth/me", headers=token_of(client, "admin")).json()["name"] == "王芳"
        with ctx.db.session() as uow:
            actor = uow.execute(
                select(identity.AUDIT.c.actor_id, identity.AUDIT.c.request_id).where(
                    identity.AUDIT.c.action == "user.created"
                )
            ).one()
        assert tuple(actor) == ("cli", "cli")
    finally:
        ctx.db.dispose()


def test_a_deactivated_unit_gets_no_more_tokens(client, ctx):
    unit = make_unit(ctx)
    add_user(ctx, "liaison", role=UNIT, unit_id=unit)
    key = client.post(
        f"/units/{unit}/api-keys", json={"label": "脚本"}, headers=token_of(client, "liaison")
    ).json()["key"]
    with ctx.db.transaction() as uow:
        uow.get(Unit, unit).active = False
    assert login(client, "liaison").status_code == 401
    assert client.post("/auth/token", headers={"X-API-Key": key}).status_code == 401
