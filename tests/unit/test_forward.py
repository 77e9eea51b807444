"""The request the gateway sends upstream (pure logic of cortex.dataplane.forward)."""

from __future__ import annotations

from cortex.dataplane.connection import Request
from cortex.dataplane.forward import build_upstream_request


def _req(headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Request:
    return Request(b"POST", b"/x?a=1", headers, body)


def test_drops_hop_by_hop_and_connection_named_headers_and_reframes_body() -> None:
    req = _req(
        [
            (b"Host", b"api"),
            (b"Connection", b"keep-alive, X-Secret"),
            (b"X-Secret", b"s"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"X-Forwarded-For", b"10.0.0.1"),
            (b"Content-Type", b"text/plain"),
        ],
        b"hello",
    )
    data, probe = build_upstream_request(req, b"/?a=1", b"127.0.0.9", b"up:1")
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /?a=1 HTTP/1.1"
    assert sorted(lines[1:]) == sorted(
        [
            b"Host: api",
            b"Content-Type: text/plain",
            b"X-Forwarded-For: 10.0.0.1, 127.0.0.9",
            b"Content-Length: 5",
        ]
    )
    assert body == b"hello" and probe is False


def test_adds_host_when_missing_and_frames_an_empty_declared_body() -> None:
    data, _ = build_upstream_request(_req([(b"Content-Length", b"0")]), b"/", b"1.2.3.4", b"up:1")
    assert data == (
        b"POST / HTTP/1.1\r\nHost: up:1\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 0\r\n\r\n"
    )


def test_kube_probe_user_agent_bypasses_the_limiter() -> None:
    _, probe = build_upstream_request(
        _req([(b"User-Agent", b"kube-probe/1.27")]), b"/", b"1.2.3.4", b"up:1"
    )
    assert probe is True
