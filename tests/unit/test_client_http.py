"""OperatorClient's request shape and error mapping.

httpx.MockTransport stands in for the operator here only to pin the mapping of wire errors to
exception classes; the real operator is exercised by the integration suite.
"""

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cortex.client.http import OperatorClient
from cortex.errors import (
    AuthForbiddenError,
    ConnectionFailedError,
    CortexError,
    NotDeployedError,
    SpecError,
    VersionMismatchError,
)
from cortex.version import __version__

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, token: str | None = "tok") -> OperatorClient:
    return OperatorClient("http://op.test/", token=token, transport=httpx.MockTransport(handler))


def error(status: int, code: str, message: str) -> Handler:
    body = {"error": {"code": code, "message": message, "details": None}}
    return lambda request: httpx.Response(status, json=body)


def test_sends_bearer_token_and_version_header():
    seen = {}

    def handler(request):
        seen.update(request.headers)
        seen["url"] = str(request.url)
        return httpx.Response(200, json=[])

    with client_for(handler) as http:
        assert http.get("/get", params={"force": True, "keepCache": False, "jobID": None}) == []
    assert seen["authorization"] == "Bearer tok"
    assert seen["cortexapiversion"] == __version__
    assert seen["url"] == "http://op.test/get?force=true&keepCache=false"


def test_no_token_no_authorization_header():
    seen = {}

    def handler(request):
        seen.update(request.headers)
        return httpx.Response(200, json={})

    with client_for(handler, token=None) as http:
        http.verify()
    assert "authorization" not in seen


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "api.not_deployed", NotDeployedError),
        (400, "spec.invalid", SpecError),
        (403, "auth.forbidden", AuthForbiddenError),
        (400, "version.mismatch", VersionMismatchError),
        (500, "something.new", CortexError),
    ],
)
def test_error_bodies_map_to_classes(status, code, cls):
    with client_for(error(status, code, "the message")) as http, pytest.raises(cls) as info:
        http.get("/get/x")
    assert type(info.value) is cls
    assert info.value.message == "the message"


def test_non_json_error_quotes_status_and_body():
    handler = lambda request: httpx.Response(502, text="bad gateway")  # noqa: E731
    with client_for(handler) as http, pytest.raises(CortexError) as info:
        http.get("/get")
    assert info.value.message == "unknown response from the operator (status 502): bad gateway"


def test_unreachable_operator_says_how_to_fix():
    # a real closed port: nothing listens there once the socket is closed
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        OperatorClient(f"http://127.0.0.1:{port}") as http,
        pytest.raises(ConnectionFailedError) as info,
    ):
        http.get("/get")
    assert f"cannot reach the operator at http://127.0.0.1:{port}" in info.value.message
    assert "cortex cluster up" in info.value.message


def test_deploy_posts_multipart_config_and_query():
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["params"] = dict(request.url.params)
        seen["body"] = request.read()
        seen["type"] = request.headers["content-type"]
        return httpx.Response(200, json=[{"api": None, "message": "creating a", "error": ""}])

    with client_for(handler) as http:
        results = http.deploy(b"- name: a\n", file_name="c.yaml", project_dir="/p", force=True)
    assert results == [{"api": None, "message": "creating a", "error": ""}]
    assert seen["params"] == {"force": "true", "configFileName": "c.yaml", "projectDir": "/p"}
    assert seen["type"].startswith("multipart/form-data")
    assert b'name="config"; filename="c.yaml"' in seen["body"]
    assert b"- name: a\n" in seen["body"]


def test_stream_lines_and_stream_errors():
    def handler(request):
        if request.url.path == "/streamlogs/a":
            return httpx.Response(200, text='{"message": "one"}\n{"message": "two"}\n')
        return error(404, "api.not_deployed", "b is not deployed")(request)

    with client_for(handler) as http:
        assert list(http.stream_lines("/streamlogs/a")) == [
            '{"message": "one"}',
            '{"message": "two"}',
        ]
        with pytest.raises(NotDeployedError, match="b is not deployed"):
            list(http.stream_lines("/streamlogs/b"))
