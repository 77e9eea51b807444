"""The CLI's environments file: ``<config dir>/cli.yaml`` (SPEC 14.1).

Layout::

    default_environment: local        # optional
    environments:
      - name: local                   # required, <= 63 chars, unique
        operator_endpoint: http://127.0.0.1:8888
        token: ...                    # bearer token the operator issued (optional)

The file holds tokens, so it is always written with mode 0600 (atomically: a temporary file in
the same folder, then ``os.replace``). Unknown keys in an environment entry are kept (the
original tolerated legacy keys); a legacy ``provider`` other than "" or "aws" is an error.
A ``default_environment`` that names no configured environment is ignored.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cortex.errors import CortexError, InvalidRequestError, NotFoundError

CONFIG_FILE_NAME = "cli.yaml"
MAX_ENV_NAME_LENGTH = 63
_ENV_KEYS = ("name", "operator_endpoint", "token")


def config_dir(environ: dict[str, str] | None = None) -> Path:
    """``$CORTEX_CLI_CONFIG_DIR`` (``~`` expanded, relative to cwd) else ``~/.cortex``.

    The folder is created (mode 0700) if missing.
    """
    env = os.environ if environ is None else environ
    raw = env.get("CORTEX_CLI_CONFIG_DIR") or "~/.cortex"
    path = Path(raw).expanduser().absolute()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def normalize_endpoint(url: str) -> str:
    """Strip trailing slashes; a bare host gets ``https://`` as in the original CLI."""
    url = url.strip().rstrip("/")
    if not url:
        raise InvalidRequestError("the operator endpoint cannot be empty")
    if "://" not in url:
        url = "https://" + url
    return url


def validate_env_name(name: str) -> str:
    if not name:
        raise InvalidRequestError("the environment name cannot be empty")
    if len(name) > MAX_ENV_NAME_LENGTH:
        raise InvalidRequestError(
            f'environment name "{name}" must be no more than {MAX_ENV_NAME_LENGTH} characters'
        )
    return name


@dataclass
class Environment:
    """One ``environments`` entry; ``extra`` keeps keys we do not know (legacy ones)."""

    name: str
    operator_endpoint: str
    token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, with_token: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "operator_endpoint": self.operator_endpoint}
        if with_token and self.token:
            out["token"] = self.token
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, item: Any, index: int) -> Environment:
        if not isinstance(item, dict):
            raise CortexError(f"{CONFIG_FILE_NAME}: environments: index {index}: must be a map")
        name, endpoint = item.get("name"), item.get("operator_endpoint")
        if not isinstance(name, str) or not name:
            raise CortexError(
                f"{CONFIG_FILE_NAME}: environments: index {index}: name: must be defined"
            )
        if not isinstance(endpoint, str) or not endpoint:
            raise CortexError(f"{CONFIG_FILE_NAME}: {name}: operator_endpoint: must be defined")
        provider = item.get("provider", "")
        if provider not in ("", None, "aws"):
            raise CortexError(
                f"{CONFIG_FILE_NAME}: {name}: the {provider!r} provider is no longer supported; "
                f"remove the environment with `cortex env delete {name}` and configure it again"
            )
        token = item.get("token")
        extra = {k: v for k, v in item.items() if k not in _ENV_KEYS}
        return cls(name, endpoint, str(token) if token else None, extra)


@dataclass
class CliConfig:
    """The whole file; mutate with the methods, then :func:`save_config`."""

    default_environment: str | None = None
    environments: list[Environment] = field(default_factory=list)
    telemetry: bool | None = None

    def get(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def require(self, name: str) -> Environment:
        env = self.get(name)
        if env is None:
            raise NotFoundError(
                f"the {name} environment is not configured; configure it with "
                f"`cortex env configure {name}` (or run `cortex cluster up` for a local cluster)"
            )
        return env

    def upsert(self, env: Environment) -> None:
        """Add ``env`` or replace the entry of the same name (keeping its position)."""
        validate_env_name(env.name)
        env.operator_endpoint = normalize_endpoint(env.operator_endpoint)
        for i, old in enumerate(self.environments):
            if old.name == env.name:
                self.environments[i] = env
                return
        self.environments.append(env)

    def delete(self, name: str) -> None:
        """Remove ``name``; the default is cleared when it pointed there."""
        self.require(name)
        self.environments = [e for e in self.environments if e.name != name]
        if self.default_environment == name:
            self.default_environment = None

    def rename(self, old: str, new: str) -> None:
        env = self.require(old)
        validate_env_name(new)
        if old != new and self.get(new) is not None:
            raise InvalidRequestError(f"the {new} environment already exists")
        env.name = new
        if self.default_environment == old:
            self.default_environment = new

    def set_default(self, name: str) -> None:
        self.require(name)
        self.default_environment = name

    def to_dict(self, *, with_tokens: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.telemetry is not None:
            out["telemetry"] = self.telemetry
        out["default_environment"] = self.default_environment
        out["environments"] = [e.to_dict(with_token=with_tokens) for e in self.environments]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> CliConfig:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise CortexError(f"{CONFIG_FILE_NAME}: must be a map")
        raw_envs = data.get("environments") or []
        if not isinstance(raw_envs, list):
            raise CortexError(f"{CONFIG_FILE_NAME}: environments: must be a list")
        envs = [Environment.from_dict(item, i) for i, item in enumerate(raw_envs)]
        names = [e.name for e in envs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise CortexError(
                f"{CONFIG_FILE_NAME}: duplicate environment names: {', '.join(dupes)}"
            )
        default = data.get("default_environment")
        if default not in names:
            default = None
        telemetry = data.get("telemetry")
        return cls(default, envs, telemetry if isinstance(telemetry, bool) else None)


def config_path(directory: Path | None = None) -> Path:
    return (directory or config_dir()) / CONFIG_FILE_NAME


def load_config(directory: Path | None = None) -> CliConfig:
    """Read ``cli.yaml``, creating it empty (mode 0600) on first use."""
    path = config_path(directory)
    if not path.exists():
        config = CliConfig()
        save_config(config, directory)
        return config
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CortexError(f"{path}: invalid yaml: {exc}") from exc
    return CliConfig.from_dict(data)


def save_config(config: CliConfig, directory: Path | None = None) -> Path:
    """Write atomically with mode 0600 (the file holds tokens)."""
    path = config_path(directory)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    fd, tmp = tempfile.mkstemp(prefix=".cli.yaml.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_environment(
    config: CliConfig, name: str | None, *, directory: Path | None = None
) -> Environment:
    """SPEC 14.1's order: explicit name, then the default, then the only one (made default)."""
    if name:
        return config.require(name)
    if config.default_environment:
        return config.require(config.default_environment)
    if len(config.environments) == 1:
        only = config.environments[0]
        config.default_environment = only.name
        save_config(config, directory)
        return only
    if not config.environments:
        raise NotFoundError(
            "no environment is configured; run `cortex cluster up` to start a local cluster, "
            "or `cortex env configure NAME --operator-endpoint URL` to use a running one"
        )
    raise NotFoundError(
        "no default environment is set; pass --env, or set one with `cortex env default NAME`"
    )
