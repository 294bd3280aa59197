"""shared/auth.py: key material, token issue and verification, the FastAPI dependencies and the subtree rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from shared.auth import (
    ADMIN,
    INSPECTOR,
    LEEWAY_S,
    REVIEWER,
    UNIT,
    Principal,
    TokenError,
    TokenIssuer,
    TokenVerifier,
    can_see_unit,
    generate_key_pair,
    install,
    issuer_from_settings,
    load_keys,
    public_pem,
    require,
    verifier_from_settings,
    visible,
)
from shared.clock import FixedClock
from shared.settings import Settings

START = datetime(2020, 3, 9, 8, 0, tzinfo=UTC)
CITY, DISTRICT, VILLAGE, OTHER = "/c/", "/c/d/", "/c/d/v/", "/c/x/"


@pytest.fixture
def keys(tmp_path):
    return load_keys(Settings(data_dir=tmp_path))


def pair(keys, clock=None, issuer="campaign-evidence"):
    return (
        TokenIssuer(keys.private_key, issuer=issuer, clock=clock),
        TokenVerifier(keys.public_key, issuer="campaign-evidence", clock=clock),
    )


def unit_principal(path: str, unit_id: str = "d") -> Principal:
    return Principal(id="u1", name="李明", role=UNIT, unit_id=unit_id, unit_path=path)


# ---------------------------------------------------------------- key material


def test_generated_key_is_made_once_under_data_dir_and_kept_private(tmp_path):
    first = load_keys(Settings(data_dir=tmp_path))
    second = load_keys(Settings(data_dir=tmp_path))
    key_file = tmp_path / "auth" / "token-signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert public_pem(first.public_key) == public_pem(second.public_key)
    assert [p.name for p in key_file.parent.iterdir()] == [key_file.name]  # no temp files left


def test_configured_keys_as_pem_text_or_file(tmp_path):
    private_pem, public = generate_key_pair()
    (tmp_path / "public.pem").write_text(public)
    signer = Settings(data_dir=tmp_path, auth_private_key=private_pem)
    checker = Settings(data_dir=tmp_path, auth_public_key=str(tmp_path / "public.pem"))
    token = issuer_from_settings(signer).issue(subject="a1", name="王芳", role=ADMIN, ttl_s=60)
    assert verifier_from_settings(checker).verify(token).id == "a1"
    assert not (tmp_path / "auth").exists()  # configured keys: nothing generated
    with pytest.raises(ValueError, match="AUTH_PRIVATE_KEY"):
        issuer_from_settings(checker)  # a verifying service cannot sign


def test_mismatched_or_wrong_kind_of_key_is_refused(tmp_path):
    private_pem, _ = generate_key_pair()
    _, other_public = generate_key_pair()
    with pytest.raises(ValueError, match="does not belong"):
        load_keys(Settings(data_dir=tmp_path, auth_private_key=private_pem, auth_public_key=other_public))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_keys(Settings(data_dir=tmp_path, auth_private_key=ec_pem))


# ---------------------------------------------------------------- tokens


def test_round_trip_carries_the_claims(keys):
    issuer, verifier = pair(keys)
    token = issuer.issue(subject="u1", name="李明", role=UNIT, unit_id="d", unit_path=DISTRICT, ttl_s=600)
    principal = verifier.verify(token)
    assert (
        principal.id,
        principal.name,
        principal.role,
        principal.unit_id,
        principal.unit_path,
        principal.via,
    ) == ("u1", "李明", UNIT, "d", DISTRICT, "password")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600 and len(claims["jti"]) == 32
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


def test_expiry_follows_the_clock(keys):
    clock = FixedClock(START)
    issuer, verifier = pair(keys, clock)
    token = issuer.issue(subject="a1", name="王芳", role=ADMIN, ttl_s=300)
    clock.advance(timedelta(seconds=300 + LEEWAY_S))
    assert verifier.verify(token).id == "a1"  # still inside the skew allowance
    clock.advance(timedelta(seconds=1))
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_token_from_the_future_is_refused(keys):
    issuer, _ = pair(keys, FixedClock(START + timedelta(hours=1)))
    _, verifier = pair(keys, FixedClock(START))
    with pytest.raises(TokenError, match="future"):
        verifier.verify(issuer.issue(subject="a1", name="王芳", role=ADMIN, ttl_s=7200))


def test_forged_tampered_and_foreign_tokens_are_refused(keys, tmp_path):
    issuer, verifier = pair(keys)
    good = issuer.issue(subject="u1", name="李明", role=UNIT, unit_id="d", unit_path=DISTRICT, ttl_s=600)
    other_keys = load_keys(Settings(data_dir=tmp_path / "elsewhere"))
    forged = TokenIssuer(other_keys.private_key, issuer="campaign-evidence").issue(
        subject="x", name="x", role=ADMIN, ttl_s=600
    )
    header, payload, signature = good.split(".")
    elevated = jwt.encode(
        {**jwt.decode(good, options={"verify_signature": False}), "role": ADMIN}, "k" * 32, algorithm="HS256"
    )
    unsigned = jwt.encode({"sub": "x", "role": ADMIN}, None, algorithm="none")
    foreign_issuer = pair(keys, issuer="someone-else")[0].issue(subject="a", name="a", role=ADMIN, ttl_s=600)
    assert verifier.verify(good).id == "u1"  # the verifier remembers a good signature: no look-alike profits
    for bad in (
        forged,
        f"{header}.{payload}.{signature[:-4]}AAAA",
        elevated,
        unsigned,
        foreign_issuer,
        "not-a-token",
        "",
    ):
        with pytest.raises(TokenError):
            verifier.verify(bad)


def test_unit_tokens_need_a_unit_path(keys):
    issuer, verifier = pair(keys)
    with pytest.raises(ValueError):
        issuer.issue(subject="u1", name="李明", role=UNIT, unit_id="d", ttl_s=60)
    with pytest.raises(ValueError):
        issuer.issue(subject="u1", name="李明", role="superuser", ttl_s=60)
    now = int(datetime.now(UTC).timestamp())
    sneaky = jwt.encode(
        {
            "iss": "campaign-evidence",
            "sub": "u1",
            "role": UNIT,
            "unit_id": "d",
            "unit_path": "",
            "iat": now,
            "exp": now + 60,
            "jti": "j",
        },
        keys.private_key,
        algorithm="EdDSA",
    )
    with pytest.raises(TokenError, match="unit path"):
        verifier.verify(sneaky)


# ---------------------------------------------------------------- the subtree rule


def test_can_see_unit_covers_staff_own_subtree_and_nothing_else():
    for role in (ADMIN, REVIEWER, INSPECTOR):
        assert can_see_unit(Principal(id="s", name="s", role=role), OTHER)
    district = unit_principal(DISTRICT)
    assert can_see_unit(district, DISTRICT) and can_see_unit(district, VILLAGE)
    assert not can_see_unit(district, CITY) and not can_see_unit(district, OTHER)
    assert not can_see_unit(district, "/c/dd/")  # a sibling whose id merely starts alike
    assert can_see_unit(district, "", unit_id="d") and not can_see_unit(district, "", unit_id="x")
    assert not can_see_unit(district, None)


def test_visible_filters_rows_in_sql():
    engine = create_engine("sqlite://")
    rows = Table(
        "rows",
        MetaData(),
        Column("id", String, primary_key=True),
        Column("unit_id", String),
        Column("unit_path", String),
    )
    rows.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(rows),
            [
                {"id": "city", "unit_id": "c", "unit_path": CITY},
                {"id": "district", "unit_id": "d", "unit_path": DISTRICT},
                {"id": "village", "unit_id": "v", "unit_path": VILLAGE},
                {"id": "other", "unit_id": "x", "unit_path": OTHER},
                {"id": "legacy-own", "unit_id": "d", "unit_path": ""},
                {"id": "legacy-other", "unit_id": "x", "unit_path": None},
                {"id": "like-chars", "unit_id": "w", "unit_path": "/c/d_/"},
            ],
        )

    def seen(principal, with_id=True):
        clause = visible(principal, rows.c.unit_path, rows.c.unit_id if with_id else None)
        with engine.connect() as conn:
            return sorted(conn.scalars(select(rows.c.id).where(clause)))

    assert seen(unit_principal(DISTRICT)) == ["district", "legacy-own", "village"]
    assert seen(unit_principal(DISTRICT), with_id=False) == ["district", "village"]
    assert seen(unit_principal("/c/d_/", unit_id="w")) == ["like-chars"]  # LIKE wildcards are escaped
    assert len(seen(Principal(id="r", name="r", role=REVIEWER))) == 7
    assert seen(Principal(id="u", name="u", role=UNIT)) == []  # a unit principal without a path sees nothing


# ---------------------------------------------------------------- the FastAPI dependencies


@pytest.fixture
def app_client(keys):
    app = FastAPI()
    install(app, TokenVerifier(keys.public_key, issuer="campaign-evidence"))

    @app.get("/open")
    def open_route(principal: Principal = Depends(require())) -> dict:
        return {"role": principal.role}

    @app.get("/staff")
    def staff_route(principal: Principal = Depends(require(ADMIN, REVIEWER))) -> dict:
        return {"name": principal.name}

    issuer = TokenIssuer(keys.private_key, issuer="campaign-evidence")
    with TestClient(app) as client:
        yield client, issuer


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_missing_or_bad_token_gives_bilingual_401(app_client):
    client, _ = app_client
    for headers in ({}, bearer("garbage"), {"Authorization": "Basic YTpi"}):
        response = client.get("/open", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["code"] in {"unauthenticated", "invalid_token"} and body["message"] and body["message_en"]
        assert response.headers["www-authenticate"] == "Bearer"
    response = client.get("/open", headers={"X-API-Key": "cek_something"})
    assert response.status_code == 401 and response.json()["code"] == "api_key_needs_exchange"


def test_roles_are_enforced_with_403(app_client):
    client, issuer = app_client
    unit = issuer.issue(subject="u1", name="李明", role=UNIT, unit_id="d", unit_path=DISTRICT, ttl_s=60)
    reviewer = issuer.issue(subject="r1", name="王芳", role=REVIEWER, ttl_s=60)
    assert client.get("/open", headers=bearer(unit)).json() == {"role": UNIT}
    denied = client.get("/staff", headers=bearer(unit))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert client.get("/staff", headers=bearer(reviewer)).json() == {"name": "王芳"}


def test_every_response_carries_a_request_id(app_client):
    client, _ = app_client
    assert len(client.get("/open").headers["x-request-id"]) == 32
    assert client.get("/open", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    assert (
        client.get("/open", headers={"X-Request-ID": "bad id\twith junk"}).headers["x-request-id"]
        != "bad id\twith junk"
    )


def test_require_refuses_unknown_roles():
    with pytest.raises(ValueError):
        require("superuser")


def test_scope_of_confines_units_and_frees_staff():
    from shared.auth import scope_of

    assert scope_of(Principal(id="r", name="r", role=REVIEWER)) is None
    assert scope_of(unit_principal(DISTRICT)) == DISTRICT
    with pytest.raises(ValueError):
        scope_of(Principal(id="u", name="u", role=UNIT))  # never "" (which would mean everything)
