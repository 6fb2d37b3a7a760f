"""The connection and request-rule options of `triggerfish dev` and `serve`, and `serve`'s config file keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from triggerfish.cli import serving
from triggerfish.cli.serve import _read_config, serve
from triggerfish.gateway.connections import ConnectionLimits


def test_the_clis_defaults_are_the_servers() -> None:
    # Repeated in the CLI so that `triggerfish --help` does not import the server; they must not drift.
    limits = ConnectionLimits()
    assert (
        limits.max_connections,
        limits.header_timeout,
        limits.keep_alive_timeout,
    ) == (serving.DEFAULT_MAX_CONNECTIONS, serving.DEFAULT_HEADER_TIMEOUT, serving.DEFAULT_KEEP_ALIVE)


def test_the_config_file_takes_the_limits_and_the_allowed_hosts_and_origins(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        "max_connections = 4096\nheader_timeout = 5\nkeep_alive_timeout = 2.5\n"
        'allowed_hosts = ["api.example.com"]\nallowed_origins = ["https://ops.example.com"]\n'
    )
    assert _read_config(config) == {
        "max_connections": 4096,
        "header_timeout": 5,
        "keep_alive_timeout": 2.5,
        "allowed_hosts": ["api.example.com"],
        "allowed_origins": ["https://ops.example.com"],
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('allowed_hosts = "api.example.com"', "allowed_hosts must be a list"),
        ("allowed_hosts = [1]", "list of strings"),
        ('max_connections = "many"', "max_connections must be a int"),
        ("header_timeout = true", "header_timeout must be"),
    ],
)
def test_bad_config_values_are_refused_naming_the_key(tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(text + "\n")
    answer = CliRunner().invoke(serve, ["--config", str(config)])
    assert answer.exit_code == 2
    assert says in answer.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-connections", "0"], "--max-connections"),
        (["--header-timeout", "0"], "--header-timeout"),
        (["--allowed-origin", "localhost:3000"], "not an origin"),
        (["--allowed-host", "http://x"], "not a host name"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(tmp_path: Path, args: list[str], says: str) -> None:
    answer = CliRunner().invoke(serve, ["--data-dir", str(tmp_path / "server"), "--port", "0", *args])
    assert answer.exit_code == 2
    assert says in answer.output
    assert not (tmp_path / "server").exists()


def test_the_config_file_and_the_options_name_trusted_proxies(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n')
    assert _read_config(config) == {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}
    answer = CliRunner().invoke(
        serve, ["--data-dir", str(tmp_path / "server"), "--port", "0", "--trusted-proxy", "10.0.0.0/33"]
    )
    assert answer.exit_code != 0
    assert "'10.0.0.0/33' is not an IP address or network" in answer.output
