"""The Python client (SPEC 14.3): ``cx = cortex.client("local"); cx.deploy({...}, wait=True)``.

Unlike the original, which shelled out to the CLI binary, this speaks HTTP to the operator
directly (``OperatorClient``); the environments are the CLI's (``cli.yaml``), so the CLI and the
client see the same clusters. It never prints: every failure is an exception carrying the
operator's code and message (``CortexException`` is the base of all of them).

``wait=True`` on a RealtimeAPI/AsyncAPI deploy polls until ``requested >= 1`` and
``requested == ready == up_to_date`` (SPEC's fix of the original's quirk), and raises as soon as
``/describe`` reports a failed replica (ErrImagePull, Failed, Killed, KilledOOM, Unknown) or the
timeout passes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from cortex.client.config import Environment, config_dir, load_config, save_config
from cortex.client.http import OperatorClient, first_item, job_route
from cortex.errors import CortexError, InvalidRequestError, NotFoundError

CortexException = CortexError
"""The base of every exception the client raises (the original's name)."""

WAIT_KINDS = frozenset({"RealtimeAPI", "AsyncAPI"})
FAILED_REPLICA_KEYS = ("err_image_pull", "failed", "killed", "killed_oom", "unknown")


class NotFound(NotFoundError):
    """An environment (or API) the caller named does not exist."""


def env_list() -> dict[str, Any]:
    """``{"default_environment": str|None, "environments": [{name, operator_endpoint, token?}]}``.

    Tokens are included: a ``Client`` built from an entry needs its token.
    """
    return load_config().to_dict()


def env_delete(env_name: str) -> None:
    """Remove an environment from ``cli.yaml`` (clearing the default if it was the default)."""
    directory = config_dir()
    config = load_config(directory)
    if config.get(env_name) is None:
        raise NotFound(f"can't find environment {env_name}")
    config.delete(env_name)
    save_config(config, directory)


def client(env_name: str | None = None) -> Client:
    """A client for ``env_name``, or for the default environment when it is None."""
    envs = env_list()
    name = env_name or envs.get("default_environment")
    if not name:
        raise NotFound("no default environment configured")
    for env in envs["environments"]:
        if env["name"] == name:
            return Client(env)
    raise NotFound(f"can't find environment {name}, create one by calling `cortex.new_client()`")


def new_client(env_name: str, operator_endpoint: str, token: str | None = None) -> Client:
    """Check the endpoint (an operator that accepts ``token``), save it as ``env_name``, return
    its client."""
    directory = config_dir()
    config = load_config(directory)
    env = Environment(env_name, operator_endpoint, token)
    config.upsert(env)
    with OperatorClient(env.operator_endpoint, token=token) as http:
        http.check_access()
    if config.default_environment is None:
        config.default_environment = env_name
    save_config(config, directory)
    return client(env_name)


class Client:
    """Calls on one environment; ``env`` is its ``cli.yaml`` entry, ``env_name`` its name."""

    def __init__(
        self,
        env_config: dict[str, Any],
        *,
        timeout_s: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not env_config.get("operator_endpoint"):
            raise InvalidRequestError("the environment has no operator_endpoint")
        self.env = dict(env_config)
        self.env_name: str = str(env_config.get("name", ""))
        self._timeout_s = timeout_s
        self._transport = transport  # test seam (httpx.MockTransport)

    def _http(self) -> OperatorClient:
        return OperatorClient(
            str(self.env["operator_endpoint"]),
            token=self.env.get("token"),
            timeout_s=self._timeout_s,
            transport=self._transport,
        )

    def deploy(
        self,
        api_spec: dict[str, Any],
        force: bool = True,
        wait: bool = False,
        *,
        project_dir: str | os.PathLike[str] | None = None,
        wait_timeout_s: float = 600.0,
        poll_period_s: float = 1.0,
    ) -> dict[str, Any]:
        """Deploy one API from a dict; its containers start in ``project_dir`` (default: cwd).

        The original wrote the dict to a temporary ``cortex.yaml``; we post the YAML directly
        (the local backend runs containers in ``project_dir``, which a temporary folder is not).
        """
        folder = Path(project_dir or os.getcwd()).absolute()
        config = yaml.safe_dump([api_spec], sort_keys=False).encode()
        return self._deploy(
            config, "cortex.yaml", folder, force, wait, wait_timeout_s, poll_period_s
        )

    def deploy_from_file(
        self,
        config_file: str | os.PathLike[str],
        force: bool = False,
        wait: bool = False,
        *,
        wait_timeout_s: float = 600.0,
        poll_period_s: float = 1.0,
    ) -> dict[str, Any]:
        """Deploy a ``cortex.yaml``; return the first DeployResult (or the API when waiting)."""
        path = Path(config_file).absolute()
        try:
            config = path.read_bytes()
        except OSError as exc:
            raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from exc
        return self._deploy(
            config, path.name, path.parent, force, wait, wait_timeout_s, poll_period_s
        )

    def _deploy(
        self,
        config: bytes,
        file_name: str,
        folder: Path,
        force: bool,
        wait: bool,
        wait_timeout_s: float,
        poll_period_s: float,
    ) -> dict[str, Any]:
        with self._http() as http:
            results = http.deploy(config, file_name=file_name, project_dir=str(folder), force=force)
        if not results:
            raise CortexException("the operator returned no deploy result")
        result = results[0]
        if result.get("error"):
            raise CortexException(str(result["error"]).removeprefix("error: "))
        api = result.get("api") or {}
        metadata = api.get("metadata") or {}
        if not wait or metadata.get("kind") not in WAIT_KINDS:
            return result
        return self.wait_until_ready(
            str(metadata["name"]), timeout_s=wait_timeout_s, poll_period_s=poll_period_s
        )

    def wait_until_ready(
        self, api_name: str, *, timeout_s: float = 600.0, poll_period_s: float = 1.0
    ) -> dict[str, Any]:
        """Poll until every requested replica is ready and up to date; return ``get_api``."""
        deadline = time.monotonic() + timeout_s
        while True:
            described = self._describe(api_name)
            _raise_on_failed_replicas(api_name, described)
            status = described.get("status") or {}
            requested = int(status.get("requested", 0))
            if requested >= 1 and requested == status.get("ready") == status.get("up_to_date"):
                return self.get_api(api_name)
            if time.monotonic() >= deadline:
                raise CortexException(
                    f"{api_name} did not become ready within {timeout_s:g}s "
                    f"(ready {status.get('ready', 0)}, requested {requested}, "
                    f"up to date {status.get('up_to_date', 0)})"
                )
            time.sleep(poll_period_s)

    def _describe(self, api_name: str) -> dict[str, Any]:
        with self._http() as http:
            return first_item(http.get(f"/describe/{api_name}"), api_name)

    def get_api(self, api_name: str) -> dict[str, Any]:
        with self._http() as http:
            return first_item(http.get(f"/get/{api_name}"), api_name)

    def list_apis(self) -> list[dict[str, Any]]:
        with self._http() as http:
            body = http.get("/get")
        return list(body) if isinstance(body, list) else []

    def get_job(self, api_name: str, job_id: str) -> dict[str, Any]:
        route = self._job_route(api_name)
        with self._http() as http:
            body = http.get(f"{route}/{api_name}", params={"jobID": job_id})
        return dict(body) if isinstance(body, dict) else {"job_status": body}

    def submit_job(self, api_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Submit a BatchAPI or TaskAPI job (SPEC 7.2 / 8.2); returns the job spec, whose
        ``job_id`` ``get_job`` and ``stop_job`` take. Posts to the operator's job route, the
        one the API's endpoint on the gateway forwards to."""
        route = self._job_route(api_name)
        with self._http() as http:
            body = http.post_json(f"{route}/{api_name}", payload)
        return dict(body) if isinstance(body, dict) else {"job": body}

    def refresh(self, api_name: str, force: bool = False) -> dict[str, Any]:
        with self._http() as http:
            return dict(http.post(f"/refresh/{api_name}", params={"force": force}))

    def delete(self, api_name: str, keep_cache: bool = False) -> dict[str, Any]:
        with self._http() as http:
            return dict(http.delete(f"/delete/{api_name}", params={"keepCache": keep_cache}))

    def stop_job(self, api_name: str, job_id: str, keep_cache: bool = False) -> dict[str, Any]:
        """Stop a BatchAPI or TaskAPI job (``keep_cache`` is accepted and unused, as originally)."""
        route = self._job_route(api_name)
        with self._http() as http:
            return dict(http.delete(f"{route}/{api_name}", params={"jobID": job_id}))

    def _job_route(self, api_name: str) -> str:
        return job_route(self.get_api(api_name))[1]


def _raise_on_failed_replicas(api_name: str, described: dict[str, Any]) -> None:
    counts = (described.get("status") or {}).get("replica_counts") or {}
    failed = {k: int(counts.get(k) or 0) for k in FAILED_REPLICA_KEYS if counts.get(k)}
    if failed:
        summary = ", ".join(f"{n} {k}" for k, n in failed.items())
        raise CortexException(
            f"{api_name} has failed replicas ({summary}); see `cortex logs {api_name}`"
        )


__all__ = [
    "Client",
    "CortexException",
    "NotFound",
    "client",
    "env_delete",
    "env_list",
    "new_client",
]
