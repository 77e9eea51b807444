"""What a container process receives: its environment (SPEC 11.5) and its argv.

Environment, in this order (later keys win): the operator's own environment minus every
``CORTEX_*`` variable (so the operator token never reaches user code), then CORTEX_VERSION,
CORTEX_LOG_LEVEL, CORTEX_CLI_CONFIG_DIR, CORTEX_PORT (the replica's loopback port; not for a
replica without a port), CORTEX_MNT (the pod's shared scratch folder), CORTEX_API_NAME,
CORTEX_API_KIND, CUDA_VISIBLE_DEVICES (when the node has GPUs), the template's extra env, then
the user's ``env`` sorted by key (sorting, as Cortex does, so re-ordering changes nothing).

``$(VAR)`` references in ``command``, ``args`` and user env values expand as Kubernetes does
(``expand``): only variables the pod spec defines (not the inherited operator environment),
an undefined reference stays literal, ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cortex.version import __version__


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (k8s ``third_party/forked/golang/expansion``)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            piece, advance = _read_reference(text, cursor + 1, variables)
            out.append(piece)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def _read_reference(text: str, start: int, variables: Mapping[str, str]) -> tuple[str, int]:
    """What ``$`` followed by ``text[start:]`` becomes, and how many characters it used."""
    first = text[start]
    if first == "$":
        return "$", 1
    if first == "(":
        close = text.find(")", start + 1)
        if close == -1:
            return "$(", 1
        name = text[start + 1 : close]
        return variables.get(name, f"$({name})"), close - start + 1
    return "$" + first, 1


@dataclass(frozen=True)
class ContainerContext:
    """The per-replica values every container of the pod gets."""

    api_name: str
    api_kind: str
    log_level: str
    cli_config_dir: Path
    port: int | None
    mnt: Path
    cuda_visible_devices: str | None
    extra_env: Mapping[str, str]


def cortex_env(ctx: ContainerContext, user_env: Mapping[str, str]) -> dict[str, str]:
    """The variables the pod spec defines for one container (the ones ``$(VAR)`` may use)."""
    env = {
        "CORTEX_VERSION": __version__,
        "CORTEX_LOG_LEVEL": ctx.log_level,
        "CORTEX_CLI_CONFIG_DIR": str(ctx.cli_config_dir),
    }
    if ctx.port is not None:
        env["CORTEX_PORT"] = str(ctx.port)
    env["CORTEX_MNT"] = str(ctx.mnt)
    env["CORTEX_API_NAME"] = ctx.api_name
    env["CORTEX_API_KIND"] = ctx.api_kind
    if ctx.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ctx.cuda_visible_devices
    env.update(ctx.extra_env)
    for key in sorted(user_env):
        env[key] = expand(user_env[key], env)
    return env


def process_env(base_env: Mapping[str, str], defined: Mapping[str, str]) -> dict[str, str]:
    """The full environment: the operator's minus ``CORTEX_*``, then the defined variables.

    The folder of the interpreter that runs cortex comes first on ``PATH``: locally a container's
    ``python`` is the environment cortex is installed in (the local stand-in for the image's
    interpreter), even when the cluster was started without activating that environment.
    """
    env = {k: v for k, v in base_env.items() if not k.startswith("CORTEX_")}
    bin_dir = str(Path(sys.executable).parent)
    paths = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    env["PATH"] = os.pathsep.join([bin_dir, *paths])
    for key, value in defined.items():
        env.pop(key, None)  # keep the defined order: inherited first, then ours
        env[key] = value
    return env


def container_argv(
    command: Sequence[str] | None, args: Sequence[str] | None, defined: Mapping[str, str]
) -> list[str]:
    """``command + args`` with ``$(VAR)`` expanded; empty when there is no command."""
    if not command:
        return []
    return [expand(part, defined) for part in [*command, *(args or [])]]
