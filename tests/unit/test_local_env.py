"""Container environment and Kubernetes $(VAR) expansion of the local backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cortex.backends.local.env import (
    ContainerContext,
    container_argv,
    cortex_env,
    expand,
    process_env,
)
from cortex.version import __version__

VARS = {"A": "1", "PORT": "8080", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(PORT)z", "x1y8080z"),
        ("$$(A)", "$(A)"),  # escaped
        ("$$$(A)", "$1"),
        ("$(MISSING)", "$(MISSING)"),  # undefined stays literal
        ("$(EMPTY)-", "-"),
        ("$(A", "$(A"),  # unterminated
        ("$A", "$A"),  # only $(...) is a reference
        ("a$", "a$"),  # trailing $
        ("$$", "$"),
        ("", ""),
    ],
)
def test_expand(text, expected):
    assert expand(text, VARS) == expected


def _ctx(*, port: int | None = 4321, cuda: str | None = None) -> ContainerContext:
    return ContainerContext(
        api_name="iris",
        api_kind="RealtimeAPI",
        log_level="DEBUG",
        cli_config_dir=Path("/cfg"),
        port=port,
        mnt=Path("/state/replicas/r/mnt"),
        cuda_visible_devices=cuda,
        extra_env={"CORTEX_JOB_SPEC_PATH": "/j.json"},
    )


def test_cortex_env_order_and_user_env_sorted_and_expanded():
    env = cortex_env(_ctx(), {"ZED": "z", "ALPHA": "port=$(CORTEX_PORT)", "BETA": "$(ZED)"})
    assert list(env) == [
        "CORTEX_VERSION",
        "CORTEX_LOG_LEVEL",
        "CORTEX_CLI_CONFIG_DIR",
        "CORTEX_PORT",
        "CORTEX_MNT",
        "CORTEX_API_NAME",
        "CORTEX_API_KIND",
        "CORTEX_JOB_SPEC_PATH",
        "ALPHA",
        "BETA",
        "ZED",
    ]
    assert env["CORTEX_VERSION"] == __version__
    assert env["ALPHA"] == "port=4321"
    # BETA is defined before ZED (sorted), so its reference is not yet defined: literal
    assert env["BETA"] == "$(ZED)"


def test_no_port_no_cortex_port_and_gpus_listed():
    env = cortex_env(_ctx(port=None, cuda="0,1"), {})
    assert "CORTEX_PORT" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_process_env_drops_every_operator_cortex_variable():
    base = {"PATH": "/bin", "CORTEX_OPERATOR_TOKEN": "secret", "CORTEX_LOG_LEVEL": "x"}
    env = process_env(base, {"CORTEX_LOG_LEVEL": "INFO", "Z": "1"})
    bin_dir = str(Path(sys.executable).parent)
    assert env == {"PATH": f"{bin_dir}:/bin", "CORTEX_LOG_LEVEL": "INFO", "Z": "1"}
    assert list(env) == ["PATH", "CORTEX_LOG_LEVEL", "Z"]


def test_process_env_puts_cortex_python_first_on_path_once():
    bin_dir = str(Path(sys.executable).parent)
    env = process_env({"PATH": f"/usr/bin:{bin_dir}"}, {})
    assert env["PATH"] == f"{bin_dir}:/usr/bin"


def test_argv_is_command_then_args_expanded():
    assert container_argv(["run", "$(A)"], ["--p=$(PORT)", "$$(A)"], VARS) == [
        "run",
        "1",
        "--p=8080",
        "$(A)",
    ]
    assert container_argv(None, ["x"], VARS) == []
    assert container_argv([], None, VARS) == []
