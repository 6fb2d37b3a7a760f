"""`triggerfish secrets` and `triggerfish audit` as a user runs them: the CLI in a subprocess against a real
`triggerfish serve` (its apps boxed) and a real `triggerfish dev`, values given on stdin or from a file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.devserver import DevServer
from triggerfish.deploy.bundle import pack

ROOT = Path(__file__).resolve().parent.parent.parent
STRIPE = "sk_live_cli_0000secret"
APP = """
import os
import triggerfish

app = triggerfish.App("shop")


@app.function(secrets=["STRIPE_KEY"])
def charge(event, context):
    return {"environ": os.environ.get("STRIPE_KEY"), "context": context.secrets["STRIPE_KEY"]}
"""


def cli(*args: str, server: str, key: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIGGERFISH_SERVER": server, "TRIGGERFISH_CONFIG": os.devnull}
    env.pop("TRIGGERFISH_KEY", None)
    if key is not None:
        env["TRIGGERFISH_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "triggerfish", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_app(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(textwrap.dedent(APP))
    return directory


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[DevServer, str]]:
    process = DevServer("--port", "0", "--data-dir", str(tmp_path / "data"), cwd=ROOT, verb="serve").start(60)
    try:
        admin = (tmp_path / "data" / "admin.key").read_text().strip()
        bundle = pack(write_app(tmp_path / "shop"))
        headers = {"authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=process.url, headers=headers, timeout=60) as http:
            base = "/-/api/v1/apps/shop"
            gzip = {"content-type": "application/gzip"}
            assert http.put(f"{base}/bundles/{bundle.sha256}", content=bundle.data, headers=gzip).status_code == 201
            deployed = http.post(f"{base}/deploys", json={"bundle": bundle.sha256})
            assert deployed.status_code == 201, deployed.text
        yield process, admin
    finally:
        process.stop()


def test_set_list_invoke_remove_and_audit_through_the_cli(serve: tuple[DevServer, str], tmp_path: Path) -> None:
    process, admin = serve
    url = process.url
    assert any(line.startswith("secrets: sealed with key ") for line in process.lines)
    done = cli("secrets", "set", "shop", "STRIPE_KEY", server=url, key=admin, stdin=STRIPE + "\n")
    assert (done.returncode, done.stdout) == (0, "set secret STRIPE_KEY of app shop: version 1\n"), done.stderr
    invoked = cli("invoke", "charge", "--app", "shop", server=url, key=admin)
    assert json.loads(invoked.stdout) == {"environ": STRIPE, "context": STRIPE}  # the newline echo added is gone

    pem = "-----BEGIN KEY-----\nline one\nline two\n-----END KEY-----\n"
    (tmp_path / "key.pem").write_text(pem)
    done = cli("secrets", "set", "shop", "STRIPE_KEY", "--from-file", str(tmp_path / "key.pem"), server=url, key=admin)
    assert done.returncode == 0, done.stderr
    assert json.loads(cli("invoke", "charge", "--app", "shop", server=url, key=admin).stdout)["environ"] == pem

    listed = cli("secrets", "list", "shop", server=url, key=admin)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["NAME", "VERSION", "CREATED", "UPDATED", "KEY"]
    assert listed.stdout.splitlines()[1].split()[:2] == ["STRIPE_KEY", "2"]
    assert STRIPE not in listed.stdout
    assert "line one" not in listed.stdout

    empty = cli("secrets", "set", "shop", "STRIPE_KEY", server=url, key=admin, stdin="")
    assert empty.returncode == 2
    assert "empty" in empty.stderr

    assert cli("secrets", "remove", "shop", "STRIPE_KEY", server=url, key=admin).returncode == 0
    again = cli("secrets", "remove", "shop", "STRIPE_KEY", server=url, key=admin)
    assert again.returncode == 1
    assert "SecretNotFound" in again.stderr

    viewer = cli("keys", "create", "--role", "viewer", "--app", "shop", server=url, key=admin).stdout.strip()
    refused = cli("secrets", "set", "shop", "STRIPE_KEY", server=url, key=viewer, stdin="x")
    assert refused.returncode == 4
    assert "lacks the role" in refused.stderr
    assert cli("audit", server=url, key=viewer).returncode == 4

    audit = cli("audit", "--json", "--app", "shop", server=url, key=admin)
    assert audit.returncode == 0, audit.stderr
    assert STRIPE not in audit.stdout
    rows = [(e["operation"], e["outcome"]) for e in json.loads(audit.stdout)["entries"]]
    assert rows == [
        ("deploy", "ok"),
        ("secret.set", "ok"),
        ("secret.set", "ok"),
        ("secret.remove", "ok"),
        ("secret.remove", "failed"),
        ("key.create", "ok"),
        ("secret.set", "refused"),
    ]
    table = cli("audit", "--outcome", "refused", server=url, key=admin)
    assert "secret.set" in table.stdout
    assert "(shop-viewer, viewer)" in table.stdout  # the key by its default name, and its role


def test_a_server_given_another_key_refuses_to_start(serve: tuple[DevServer, str], tmp_path: Path) -> None:
    process, admin = serve
    done = cli("secrets", "set", "shop", "STRIPE_KEY", server=process.url, key=admin, stdin=STRIPE)
    assert done.returncode == 0, done.stderr
    process.stop()
    other = subprocess.run(
        [sys.executable, "-m", "triggerfish", "secrets", "generate-key"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other.startswith("tfsk_")
    env = {**os.environ, "TRIGGERFISH_SECRETS_KEY": other}
    refused = subprocess.run(
        [sys.executable, "-m", "triggerfish", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out, err = refused.stdout, refused.stderr
    assert refused.returncode == 2, out + err
    assert "which this server does not hold" in err
    assert other not in out + err


def test_dev_keeps_secrets_beside_its_store(tmp_path: Path) -> None:
    project = write_app(tmp_path / "project")
    process = DevServer("app.py", "--port", "0", "--no-reload", cwd=project).start(60)
    try:
        done = cli("secrets", "set", "STRIPE_KEY", server=process.url, stdin="sk_test_dev")
        assert (done.returncode, done.stdout) == (0, "set secret STRIPE_KEY: version 1\n"), done.stderr
        invoked = cli("invoke", "charge", server=process.url)
        assert json.loads(invoked.stdout) == {"environ": "sk_test_dev", "context": "sk_test_dev"}
        assert "STRIPE_KEY" in cli("secrets", "list", server=process.url).stdout
    finally:
        process.stop()
    key_file = project / ".triggerfish" / "shop" / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored = b"".join(path.read_bytes() for path in (project / ".triggerfish" / "shop").glob("store.db*"))
    assert b"sk_test_dev" not in stored
