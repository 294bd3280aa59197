"""One error envelope (RFC 9457 problem details) for every status of every service, and a 500 that keeps the connection."""

from __future__ import annotations

import http.client
import re
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI

from shared import problems
from shared.auth import install, verifier_from_settings
from shared.settings import Settings
from tests.flows.steps import create_unit
from tests.servers import free_port

HAN = re.compile(r"[\u4e00-\u9fff]")
HUGE = str(2**63)


def assert_problem(response, status: int, code: str | None = None) -> dict:
    """The body is a problem+json envelope with this status (and code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert HAN.search(body["message"]) and body["detail"] == body["message"] and body["message_en"]
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


def test_every_kind_of_error_has_the_same_envelope(client):
    assert_problem(client.get("/intake/no-such-route"), 404, "route_not_found")
    assert_problem(client.get("/no-such-service"), 404, "route_not_found")
    assert_problem(client.delete("/intake/campaigns"), 405, "method_not_allowed")
    assert_problem(client.get("/intake/units/nope"), 404, "not_found")
    assert_problem(client.get("/review/submissions/nope"), 404, "not_found")
    assert_problem(client.get("/notification/deliveries/nope"), 404, "not_found")
    assert_problem(client.get("/evidence/evidence/nope"), 404, "not_found")
    anonymous = client.get("/intake/users", headers={"Authorization": ""})
    assert_problem(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"


def test_a_422_names_the_fields_and_never_echoes_a_secret(client):
    secret = "hunter2-secret-value"
    response = client.post(
        "/intake/users", json={"username": "x", "display_name": "", "role": "admin", "password": secret[:5]}
    )
    body = assert_problem(response, 422, "invalid_request")
    fields = {tuple(error["loc"]) for error in body["errors"]}
    assert {("body", "username"), ("body", "password"), ("body", "display_name")} <= fields
    assert secret[:5] not in response.text
    password_error = next(error for error in body["errors"] if error["loc"] == ["body", "password"])
    assert "input" not in password_error
    missing = client.post("/intake/auth/login", json={"password": secret})
    assert_problem(missing, 422, "invalid_request")
    assert secret not in missing.text  # the whole body is the "input" of a missing field: not shown either


@pytest.mark.parametrize(
    "path",
    [
        f"/intake/users?offset={HUGE}",
        f"/intake/units?offset={HUGE}",
        f"/intake/submissions?offset={HUGE}",
        f"/notification/deliveries?offset={HUGE}",
        f"/intake/units?limit={HUGE}",
        "/intake/users?offset=-1",
        f"/intake/audit-log?offset={HUGE}",
        f"/review/audit-log?offset={HUGE}",
        f"/evidence/audit-log?limit={HUGE}",
        f"/intake/campaigns/x/versions/{HUGE}",
        "/intake/campaigns/x/versions/0",
    ],
)
def test_out_of_range_integers_are_422_not_500(client, path):
    assert_problem(client.get(path), 422, "invalid_request")


def test_bounds_are_declared_in_the_openapi(client):
    spec = client.get("/intake/openapi.json").json()
    offset = next(p for p in spec["paths"]["/users"]["get"]["parameters"] if p["name"] == "offset")
    assert offset["schema"]["maximum"] == 10_000_000 and offset["schema"]["minimum"] == 0
    version = next(
        p
        for p in spec["paths"]["/campaigns/{campaign_ref}/versions/{version}"]["get"]["parameters"]
        if p["name"] == "version"
    )
    assert version["schema"]["maximum"] == 2**31 - 1


@pytest.mark.parametrize("prefix", ["/intake", "/evidence", "/review", "/notification"])
def test_the_envelope_is_declared_in_each_openapi(client, prefix):
    spec = client.get(f"{prefix}/openapi.json").json()
    assert spec["components"]["schemas"]["Problem"]["required"] == [
        "title",
        "status",
        "detail",
        "code",
        "message",
        "message_en",
    ]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            default = operation["responses"]["default"]["content"]
            assert list(default) == ["application/problem+json"], (path, method)
            if "422" in operation["responses"]:
                assert list(operation["responses"]["422"]["content"]) == ["application/problem+json"]


def test_a_unit_created_by_the_caller_is_still_fine(client):
    assert create_unit(client)["id"]  # the ordinary path is untouched by the envelope


@pytest.fixture
def crashing_server(tmp_path):
    """A real uvicorn server whose /boom raises an unexpected error."""
    app = FastAPI()
    install(app, verifier_from_settings(Settings(data_dir=tmp_path)))

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("something nobody expected")

    @app.get("/fine")
    def fine() -> dict:
        return {"ok": True}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.integration  # a real uvicorn server: the keep-alive connection is the point
def test_an_unexpected_error_is_a_500_problem_logged_with_its_trace_and_the_connection_stays_usable(
    crashing_server, caplog
):
    connection = http.client.HTTPConnection("127.0.0.1", crashing_server, timeout=30)
    try:
        connection.request("GET", "/boom", headers={"X-Request-ID": "boom-1"})
        response = connection.getresponse()
        body = response.read().decode("utf-8")
        assert response.status == 500 and response.getheader("content-type") == problems.PROBLEM_JSON
        assert (
            '"code":"internal_error"' in body
            and '"request_id":"boom-1"' in body
            and "nobody expected" not in body
        )
        assert response.getheader("x-request-id") == "boom-1"
        sock = connection.sock
        connection.request("GET", "/fine")  # same keep-alive connection
        again = connection.getresponse()
        assert again.status == 200 and again.read() == b'{"ok":true}' and connection.sock is sock
    finally:
        connection.close()
    assert any("boom-1" in record.getMessage() and record.exc_info for record in caplog.records)


def test_field_errors_keep_short_harmless_inputs_only():
    shown = problems.field_errors(
        [
            {"loc": ("body", "title"), "type": "string_too_long", "msg": "too long", "input": "x" * 500},
            {"loc": ("body", "api_key"), "type": "x", "msg": "bad", "input": "cek_secret"},
            {"loc": ("body",), "type": "missing", "msg": "m", "input": {"password": "p"}},
            {"loc": ("query", "offset"), "type": "less_than_equal", "msg": "m", "input": 2**64},
            {"loc": ("body", "name"), "type": "x", "msg": "m", "input": b"\xff\xfe"},
        ]
    )
    assert [item.get("input") for item in shown] == [
        "x" * problems.MAX_ECHO,
        None,
        None,
        str(2**64),
        "\ufffd\ufffd",
    ]


@pytest.mark.parametrize("period", ["0000", "0000-Q1", "0000-H1", "0000-01", "9999-12", "1999", "2101-Q4"])
def test_circular_periods_outside_the_sane_years_are_422(period):
    from services.review.circulars.use_cases import parse_period
    from shared.http import ApiError

    with pytest.raises(ApiError) as refused:
        parse_period(period)
    assert refused.value.status_code == 422 and refused.value.detail["code"] == "invalid_period"


def test_the_last_sane_month_ends_in_its_own_year():
    from services.review.circulars.use_cases import parse_period

    assert parse_period("2100-12").end.isoformat() == "2100-12-31"


def test_an_absurd_circular_period_over_http_is_a_422_problem(client):
    response = client.post("/review/circulars", json={"campaign_id": "c", "period": "9999-12"})
    assert_problem(response, 422)


@pytest.mark.parametrize("prefix", ["/intake", "/evidence", "/review", "/notification"])
def test_every_integer_a_client_sends_is_bounded_in_the_openapi(client, prefix):
    spec = client.get(f"{prefix}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    unbounded = []

    def walk(schema: dict, where: str, seen: frozenset = frozenset()) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas[name], f"{where}→{name}", seen | {name})
            return
        if schema.get("type") == "integer" and (
            ("maximum" not in schema and "exclusiveMaximum" not in schema)
            or ("minimum" not in schema and "exclusiveMinimum" not in schema)
        ):
            unbounded.append(where)
        for key in ("anyOf", "oneOf", "allOf"):
            for part in schema.get(key, []):
                walk(part, where, seen)
        for name, part in schema.get("properties", {}).items():
            walk(part, f"{where}.{name}", seen)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], f"{where}[]", seen)

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                walk(parameter.get("schema", {}), f"{method.upper()} {path} {parameter['name']}")
            for content in operation.get("requestBody", {}).get("content", {}).values():
                walk(content.get("schema", {}), f"{method.upper()} {path} body")
    assert unbounded == []
