"""A malformed request body is refused with a 4xx from every service, never a 500."""

from __future__ import annotations

import pytest

ROUTES = [
    "/intake/units",
    "/intake/auth/login",
    "/review/submissions/s1/approve",
    "/evidence/upload-sessions/x/complete",
]


@pytest.mark.parametrize("path", ROUTES)
def test_json_that_does_not_parse_gets_422_with_a_chinese_message(client, path):
    response = client.post(path, content=b"{title:", headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_request" and "请求内容不符合要求" in body["message"]
    assert body["errors"][0]["type"] == "json_invalid" and body["status"] == 422 and body["request_id"]
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ROUTES)
def test_bytes_that_are_not_utf8_are_refused_without_a_server_error(client, path):
    response = client.post(
        path, content=b'{"title": "\xff\xfe\xfa"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text


def test_a_field_of_the_wrong_type_is_named_in_the_error(client):
    response = client.post("/intake/units", json={"code": 5})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert {tuple(error["loc"]) for error in body["errors"]} >= {("body", "name")}
