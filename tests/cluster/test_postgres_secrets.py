"""Secrets on a cluster of `triggerfish serve` processes on one PostgreSQL database: one key on every node (a key
file named in each node's config), a secret set on one node seen by a function on the other, a change reaching the
other node's warm workers, a node without the key that says so, and one with another key that refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.pg_cluster import Node, eventually, fresh_database, write_app
from tests.services import require_postgres
from triggerfish.secrets.keyring import SecretsKey, make_key_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PAYMENTS = """
import os
import triggerfish

app = triggerfish.App("payments")


@app.function(secrets=["STRIPE_KEY"])
def charge(event, context):
    return {"environ": os.environ["STRIPE_KEY"], "context": context.secrets["STRIPE_KEY"]}
"""


@pytest.fixture
def database() -> Iterator[str]:
    require_postgres()
    with fresh_database() as (_, url):
        yield url


def test_a_secret_set_on_one_node_is_seen_by_a_function_on_the_other(database: str, tmp_path: Path) -> None:
    key_file = tmp_path / "cluster-secrets.key"
    make_key_file(key_file, [SecretsKey.generate()])
    config = f"secrets_key_file = {str(key_file)!r}\n"
    a = Node(tmp_path / "a", database, config=config).start()
    admin = (tmp_path / "a" / "data" / "admin.key").read_text().strip()
    b = Node(tmp_path / "b", database, config=config).start(admin)
    try:
        assert not (tmp_path / "a" / "data" / "secrets.key").exists()  # the named file is the key, on both
        deployed = a.deploy("payments", write_app(tmp_path / "payments", PAYMENTS))
        assert deployed.status_code == 201, deployed.text
        assert a.client.put("/-/api/v1/apps/payments/secrets/STRIPE_KEY", json={"value": "sk_one"}).status_code == 201

        def sees(value: str) -> bool:
            answer = b.client.post("/-/api/v1/apps/payments/functions/charge/invoke", json={})
            return answer.status_code == 200 and answer.json() == {"environ": value, "context": value}

        eventually(lambda: sees("sk_one"), 10.0, "node B's function seeing the secret set on node A")
        # Node B's worker is warm with the old value now; a change on node A renews it through the change feed.
        assert a.client.put("/-/api/v1/apps/payments/secrets/STRIPE_KEY", json={"value": "sk_two"}).status_code == 200
        took = eventually(lambda: sees("sk_two"), 5.0, "node B's warm worker seeing the change made on node A")
        print(f"the change reached node B's function {took:.2f} s after node A answered")
    finally:
        b.stop()
        a.stop()

    # A third node with no key starts (everything else works there) and says why its secrets do not.
    c = Node(tmp_path / "c", database).start(admin)
    try:
        assert any("no key on this node" in line for line in c.server.lines)
        listed = c.client.get("/-/api/v1/apps/payments/secrets")
        assert [s["name"] for s in listed.json()["secrets"]] == ["STRIPE_KEY"]
        refused = c.client.put("/-/api/v1/apps/payments/secrets/OTHER", json={"value": "x"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "SecretsKeyUnavailable")
        failed = c.client.post("/-/api/v1/apps/payments/functions/charge/invoke", json={}).json()
        assert failed["errorType"] == "Runtime.SecretUnreadable"
        assert "no secrets key" in failed["errorMessage"]
    finally:
        c.stop()

    # A node given another key refuses to start: it would seal with a key the others cannot open.
    other = tmp_path / "other.key"
    make_key_file(other, [SecretsKey.generate()])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "serve.toml").write_text(f"secrets_key_file = {str(other)!r}\n")
    done = subprocess.run(
        [sys.executable, "-m", "triggerfish", "serve", "--port", "0", "--store", database,
         "--data-dir", str(tmp_path / "d" / "data"), "--config", str(tmp_path / "d" / "serve.toml")],
        env=os.environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "which this server does not hold" in done.stderr
