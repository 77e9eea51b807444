import os
import stat
from pathlib import Path

import pytest
import yaml

from cortex.client.config import (
    CliConfig,
    Environment,
    config_dir,
    load_config,
    normalize_endpoint,
    resolve_environment,
    save_config,
)
from cortex.errors import CortexError, InvalidRequestError, NotFoundError


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_config_dir_from_env_relative_and_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = config_dir({"CORTEX_CLI_CONFIG_DIR": "rel/cfg"})
    assert path == tmp_path / "rel" / "cfg"
    assert path.is_dir()


def test_config_dir_default_is_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_dir({}) == tmp_path / ".cortex"


def test_first_read_creates_empty_file_0600(tmp_path):
    config = load_config(tmp_path)
    assert config.environments == []
    assert config.default_environment is None
    assert mode(tmp_path / "cli.yaml") == 0o600


def test_save_is_0600_and_round_trips(tmp_path):
    config = CliConfig()
    config.upsert(Environment("local", "http://127.0.0.1:8888", "tok"))
    config.set_default("local")
    save_config(config, tmp_path)
    assert mode(tmp_path / "cli.yaml") == 0o600
    data = yaml.safe_load((tmp_path / "cli.yaml").read_text())
    assert data == {
        "default_environment": "local",
        "environments": [
            {"name": "local", "operator_endpoint": "http://127.0.0.1:8888", "token": "tok"}
        ],
    }
    assert load_config(tmp_path) == config


def test_upsert_replaces_in_place_and_normalizes_endpoint():
    config = CliConfig()
    config.upsert(Environment("a", "example.com/"))
    config.upsert(Environment("b", "http://b"))
    config.upsert(Environment("a", "http://a:1"))
    assert [(e.name, e.operator_endpoint) for e in config.environments] == [
        ("a", "http://a:1"),
        ("b", "http://b"),
    ]
    assert normalize_endpoint("host:8888/") == "https://host:8888"


def test_name_rules():
    config = CliConfig()
    with pytest.raises(InvalidRequestError, match="no more than 63"):
        config.upsert(Environment("x" * 64, "http://a"))
    with pytest.raises(InvalidRequestError, match="cannot be empty"):
        config.upsert(Environment("", "http://a"))


def test_delete_clears_default_and_rename_moves_it():
    config = CliConfig()
    config.upsert(Environment("a", "http://a"))
    config.upsert(Environment("b", "http://b"))
    config.set_default("a")
    config.rename("a", "c")
    assert config.default_environment == "c"
    assert [e.name for e in config.environments] == ["c", "b"]
    with pytest.raises(InvalidRequestError, match="already exists"):
        config.rename("c", "b")
    config.delete("c")
    assert config.default_environment is None
    with pytest.raises(NotFoundError, match="the c environment is not configured"):
        config.delete("c")


def test_duplicate_names_in_file_are_an_error(tmp_path):
    (tmp_path / "cli.yaml").write_text(
        "environments:\n"
        "  - {name: a, operator_endpoint: http://a}\n"
        "  - {name: a, operator_endpoint: http://b}\n"
    )
    with pytest.raises(CortexError, match="duplicate environment names: a"):
        load_config(tmp_path)


def test_legacy_keys_kept_and_bad_provider_refused(tmp_path):
    (tmp_path / "cli.yaml").write_text(
        "default_environment: local\n"  # names no environment: ignored
        "environments:\n"
        "  - {name: aws, operator_endpoint: https://x, provider: aws, region: us-west-2}\n"
    )
    config = load_config(tmp_path)
    assert config.default_environment is None
    assert config.environments[0].extra == {"provider": "aws", "region": "us-west-2"}
    (tmp_path / "cli.yaml").write_text(
        "environments:\n  - {name: g, operator_endpoint: https://x, provider: gcp}\n"
    )
    with pytest.raises(CortexError, match="provider is no longer supported"):
        load_config(tmp_path)


def test_missing_endpoint_is_an_error(tmp_path):
    (tmp_path / "cli.yaml").write_text("environments:\n  - {name: a}\n")
    with pytest.raises(CortexError, match="a: operator_endpoint: must be defined"):
        load_config(tmp_path)


def test_resolution_order(tmp_path):
    config = CliConfig()
    with pytest.raises(NotFoundError, match="no environment is configured"):
        resolve_environment(config, None, directory=tmp_path)
    config.upsert(Environment("only", "http://o"))
    # exactly one environment: it becomes the default, persisted
    assert resolve_environment(config, None, directory=tmp_path).name == "only"
    assert load_config(tmp_path).default_environment == "only"
    config.upsert(Environment("other", "http://x"))
    assert resolve_environment(config, "other", directory=tmp_path).name == "other"
    assert resolve_environment(config, None, directory=tmp_path).name == "only"
    config.default_environment = None
    with pytest.raises(NotFoundError, match="no default environment"):
        resolve_environment(config, None, directory=tmp_path)
    with pytest.raises(NotFoundError, match="the nope environment is not configured"):
        resolve_environment(config, "nope", directory=tmp_path)


def test_env_dict_hides_token_when_asked():
    env = Environment("a", "http://a", "secret")
    assert "token" not in env.to_dict(with_token=False)
    assert env.to_dict()["token"] == "secret"
