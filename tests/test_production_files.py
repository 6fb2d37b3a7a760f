"""The production files docs/serve.md quotes (a systemd unit, a Containerfile, Caddy and nginx) hold together.

Checked without systemd or a container runtime: each page block is its file, the commands they run
are `triggerfish serve` with options it has, the proxies send to the address the server listens on,
and the unit passes `systemd-analyze verify` where that is installed.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from triggerfish.cli.serve import serve
from triggerfish.deploy.bundle import DEFAULT_MAX_UPLOAD_BYTES
from triggerfish.model import MAX_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "docs" / "examples" / "production"
PAGE = ROOT / "docs" / "serve.md"


def serve_options(arguments: list[str]) -> dict[str, object]:
    """The parameters `triggerfish serve ARGUMENTS` gets; click's own error for an option it does not have."""
    context = serve.make_context("serve", list(arguments))
    return dict(context.params)


def test_every_production_block_on_the_page_is_its_file() -> None:
    text = PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- example: (docs/examples/production/\S+) -->\n```[a-z]*\n(.*?)```", text, re.S)
    assert {Path(name).name for name, _ in blocks} == {path.name for path in FILES.iterdir()}
    for name, body in blocks:
        assert body == (ROOT / name).read_text(encoding="utf-8"), f"the block of {name} differs from the file"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((FILES / "triggerfish.service").read_text())
    return parser


def test_the_unit_runs_serve_on_loopback_in_its_state_directory_and_waits_for_the_drain() -> None:
    service = unit()["Service"]
    program, verb, *arguments = shlex.split(service["ExecStart"])
    assert (Path(program).name, verb) == ("triggerfish", "serve")
    options = serve_options(arguments)
    assert options["host"] == "127.0.0.1"
    assert options["data_dir"] == f"/var/lib/{service['StateDirectory']}" == service["WorkingDirectory"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the server alone: it stops its own workers
    assert float(service["TimeoutStopSec"]) > MAX_TIMEOUT
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # Verified as written, but with a program that exists here in place of /opt/triggerfish's.
    text = (FILES / "triggerfish.service").read_text().replace("/opt/triggerfish/.venv/bin/triggerfish", sys.executable)
    (tmp_path / "triggerfish.service").write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "triggerfish.service")], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in done.stderr.splitlines() if "triggerfish.service" in line]
    assert done.returncode == 0, done.stderr
    assert complaints == []


def instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions, continuation lines joined, comments left out."""
    text = (FILES / "Containerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]


def test_the_image_runs_serve_on_its_exposed_port_with_its_data_on_the_volume() -> None:
    given = dict(instructions())
    base = re.fullmatch(r"python:3\.(\d+)-slim-\w+", given["FROM"])
    assert base is not None
    assert int(base.group(1)) >= 11  # the Python Triggerfish needs
    assert any("bubblewrap" in value for kind, value in instructions() if kind == "RUN")
    entrypoint, command = json.loads(given["ENTRYPOINT"]), json.loads(given["CMD"])
    program, verb = entrypoint
    assert program == f"{given['WORKDIR']}/.venv/bin/triggerfish"
    assert verb == "serve"
    options = serve_options(command)
    assert options["host"] == "0.0.0.0"
    assert str(options["port"]) == given["EXPOSE"]
    assert options["data_dir"] == given["VOLUME"]
    assert given["STOPSIGNAL"] == "SIGTERM"


def test_what_the_image_copies_is_in_the_repository() -> None:
    for kind, value in instructions():
        if kind == "COPY":
            *sources, _ = value.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository's root"


def test_the_proxies_send_to_the_units_address_and_let_a_bundle_and_a_log_stream_through() -> None:
    service = unit()["Service"]
    options = serve_options(shlex.split(service["ExecStart"])[2:])
    upstream = f"127.0.0.1:{options['port'] or 8080}"
    caddy = (FILES / "Caddyfile").read_text()
    assert f"reverse_proxy {upstream}" in caddy
    assert "flush_interval -1" in caddy
    nginx = (FILES / "nginx.conf").read_text()
    assert f"proxy_pass http://{upstream};" in nginx
    assert "proxy_buffering off;" in nginx
    size = re.search(r"client_max_body_size (\d+)m;", nginx)
    assert size is not None
    assert int(size.group(1)) * 1024 * 1024 >= DEFAULT_MAX_UPLOAD_BYTES


def test_a_bad_option_in_a_quoted_command_would_fail_here() -> None:
    with pytest.raises(click.NoSuchOption):
        serve_options(["--hots", "127.0.0.1"])
