"""A canned HTTP server on 127.0.0.1 for the CLI and client unit tests (real sockets, fixed
answers, every request recorded). The real operator is exercised by the integration suite."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class StubOperator:
    """``routes[(method, path)] = (status, json body)``; a list of answers is consumed in order."""

    routes: dict[tuple[str, str], Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str) -> tuple[int, Any]:
        answer = self.routes.get((method, path))
        if answer is None:
            code = {"code": "api.not_deployed", "message": f"{path} is not deployed"}
            return 404, {"error": code}
        if isinstance(answer, list) and answer and isinstance(answer[0], tuple):
            picked: tuple[int, Any] = answer.pop(0) if len(answer) > 1 else answer[0]
            return picked
        status, body = answer
        return int(status), body


def _handler(stub: StubOperator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            stub.requests.append(
                Recorded(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            status, payload = stub.answer(self.command, parts.path)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            return

    return Handler


class running_stub:
    def __init__(self) -> None:
        self.stub = StubOperator()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.stub))
        self.stub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> StubOperator:
        self.thread.start()
        return self.stub

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
