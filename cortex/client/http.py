"""HTTP client of the operator's REST API (SPEC 10.2-10.5), shared by the CLI and the Python client.

Every call sends ``Authorization: Bearer <token>`` and ``CortexAPIVersion: <our version>``.
Errors come back as exceptions, never as printed text:

- a non-2xx answer with the ``{"error": {"code", "message", "details"}}`` body becomes the class
  that code names (``cortex.errors.error_from_wire``), so ``NotDeployedError`` on the server is
  ``NotDeployedError`` here;
- a non-2xx answer without that body becomes ``CortexError`` quoting the status and the body;
- an operator that cannot be reached (refused, DNS, timeout) becomes ``ConnectionFailedError``
  with a message that says what to do.

``transport`` is the test seam (``httpx.MockTransport``); production uses the default one.
TLS verification is off, as in the original CLI (operators behind self-signed certificates).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from cortex.errors import (
    AuthForbiddenError,
    AuthMissingError,
    ConnectionFailedError,
    CortexError,
    InvalidRequestError,
    error_from_wire,
)
from cortex.version import __version__

DEFAULT_TIMEOUT_S = 600.0
INFO_TIMEOUT_S = 10.0
_Params = Mapping[str, str | int | float | bool | None]


def _query(params: _Params | None) -> dict[str, str]:
    """Drop ``None`` values; booleans become "true"/"false" (what the operator parses)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def error_from_response(response: httpx.Response) -> CortexError:
    """The exception a failed answer stands for (the body is read already)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return error_from_wire(body)
    text = response.text.strip() or "<empty body>"
    return CortexError(
        f"unknown response from the operator (status {response.status_code}): {text}"
    )


class OperatorClient:
    """One operator endpoint plus its token; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        headers = {"CortexAPIVersion": __version__}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.endpoint,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            verify=False,
            transport=transport,
        )

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.TransportError) -> ConnectionFailedError:
        if isinstance(exc, httpx.TimeoutException):
            return ConnectionFailedError(
                f"the operator at {self.endpoint} did not answer in time ({exc.__class__.__name__})"
            )
        return ConnectionFailedError(
            f"cannot reach the operator at {self.endpoint}; is the cluster running? "
            "start it with `cortex cluster up` (or check the environment with `cortex env list`)"
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: _Params | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        json_body: Any = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer (raises on any failure)."""
        extra: dict[str, Any] = {}
        if timeout_s is not None:
            extra["timeout"] = timeout_s
        if json_body is not None:
            extra["json"] = json_body
        try:
            response = self._http.request(method, path, params=_query(params), files=files, **extra)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError as exc:
            raise CortexError(
                f"unknown response from the operator (status {response.status_code}): "
                f"{response.text.strip() or '<empty body>'}"
            ) from exc

    def get(self, path: str, *, params: _Params | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, params: _Params | None = None) -> Any:
        return self.request("POST", path, params=params)

    def post_json(self, path: str, body: Any, *, params: _Params | None = None) -> Any:
        """POST ``body`` as JSON (job submissions)."""
        return self.request("POST", path, params=params, json_body=body)

    def delete(self, path: str, *, params: _Params | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def verify(self) -> None:
        """``GET /verifycortex`` must answer 200 JSON (how ``env configure`` checks an endpoint)."""
        body = self.request("GET", "/verifycortex", timeout_s=INFO_TIMEOUT_S)
        if not isinstance(body, dict):
            raise CortexError(f"{self.endpoint} does not look like a cortex operator")

    def check_access(self) -> None:
        """What ``env configure`` / ``new_client`` check before saving an environment: the
        endpoint is an operator (:meth:`verify`) and it accepts our token (``GET /info``)."""
        self.verify()
        try:
            self.info()
        except (AuthMissingError, AuthForbiddenError) as exc:
            problem = "needs a token" if isinstance(exc, AuthMissingError) else "refused the token"
            raise type(exc)(
                f"the operator at {self.endpoint} {problem}; pass its token with --token TOKEN "
                "(a local cluster's `local` environment is configured by `cortex cluster up`)"
            ) from exc

    def info(self) -> dict[str, Any]:
        body = self.request("GET", "/info", timeout_s=INFO_TIMEOUT_S)
        return body if isinstance(body, dict) else {}

    def deploy(
        self, config: bytes, *, file_name: str, project_dir: str, force: bool
    ) -> list[dict[str, Any]]:
        """``POST /deploy`` with the YAML as multipart file ``config``; one result per API."""
        params: _Params = {"force": force, "configFileName": file_name, "projectDir": project_dir}
        files = {"config": (file_name, config, "application/yaml")}
        body = self.request("POST", "/deploy", params=params, files=files)
        return list(body) if isinstance(body, list) else []

    def stream_lines(self, path: str, *, params: _Params | None = None) -> Iterator[str]:
        """Yield the lines of a chunked text answer (``/streamlogs``) as they arrive."""
        try:
            with self._http.stream(
                "GET", path, params=_query(params), timeout=httpx.Timeout(None, connect=10.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc


def first_item(body: Any, what: str) -> dict[str, Any]:
    """The operator answers ``[APIResponse]``; the single-API calls want the first element."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0]
    raise CortexError(f"unexpected answer from the operator for {what}: {json.dumps(body)[:200]}")


JOB_ROUTES = {"BatchAPI": "/batch", "TaskAPI": "/tasks"}


def job_route(api: dict[str, Any]) -> tuple[str, str]:
    """``(kind, route)`` of an API's jobs (``/batch`` or ``/tasks``) from its ``/get`` answer;
    ``InvalidRequestError`` for the kinds without jobs."""
    meta = api.get("metadata") or {}
    kind, name = str(meta.get("kind", "")), str(meta.get("name", ""))
    if kind not in JOB_ROUTES:
        raise InvalidRequestError(f"{name} is a {kind}; only BatchAPI and TaskAPI APIs have jobs")
    return kind, JOB_ROUTES[kind]
