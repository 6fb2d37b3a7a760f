"""The server-wide verbs (status, list of apps, rollback, remove, keys) against the fake `triggerfish serve`."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run
from tests.cli.fake_server import ADMIN_KEY, VIEWER_KEY, FakeServer


@pytest.fixture
def admin(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    monkeypatch.setenv("TRIGGERFISH_SERVER", fake.url)
    monkeypatch.setenv("TRIGGERFISH_KEY", ADMIN_KEY)
    return fake


def test_status_shows_the_server_where_its_url_and_key_came_from_and_the_apps(admin: FakeServer) -> None:
    done = run("status")
    assert done.exit_code == 0, done.stderr
    assert f"server: {admin.url} (from TRIGGERFISH_SERVER)" in done.stdout
    assert "key: tfk_a0000001 (from TRIGGERFISH_KEY)" in done.stdout
    assert "status: ok" in done.stdout
    assert ADMIN_KEY not in done.stdout
    lines = done.stdout.splitlines()
    header = lines.index("APP   LIVE VERSION  CANARY   FUNCTIONS  VERSIONS  LATEST")
    assert lines[header + 1 : header + 3] == [
        "blog  1             -        1          1         1",
        "shop  3             4 (10%)  2          4         4",
    ]
    # The nodes the platform runs on: one here, with what it loaded and when it last said it is alive.
    [node] = [line for line in lines if line.startswith("a1b2c3d4e5f6")]
    assert "http://10.0.0.5:8080" in node
    assert "gateway, worker" in node
    assert "blog 1; shop 3" in node
    assert " up " in f" {node} "


def test_status_as_json_and_an_unhealthy_server_exits_1(admin: FakeServer) -> None:
    admin.healthy = False
    done = run("status", "--json")
    assert done.exit_code == 1
    document = json.loads(done.stdout)
    assert (document["server"], document["key"], document["key_from"]) == (admin.url, "tfk_a0000001", "TRIGGERFISH_KEY")
    assert document["health"]["status"] == "degraded"
    assert [(a["name"], len(a["versions"])) for a in document["apps"]] == [("blog", 1), ("shop", 4)]
    assert [(n["id"], n["state"], n["in_flight"]) for n in document["nodes"]] == [("a1b2c3d4e5f6", "up", 3)]


def test_a_scoped_key_lists_only_its_app(fake: FakeServer) -> None:
    done = run("list", "--json", "--server", fake.url, "--key", VIEWER_KEY)
    assert [a["name"] for a in json.loads(done.stdout)["apps"]] == ["shop"]


def test_rollback_moves_live_to_the_version_before_or_the_one_named(admin: FakeServer) -> None:
    done = run("rollback", "shop")
    assert (done.exit_code, done.stdout) == (0, "app shop: live is version 2 now\n")
    assert admin.apps["shop"]["version"] == 2
    done = run("rollback", "shop", "--to", "3", "--json")
    assert json.loads(done.stdout) == {"app": "shop", "version": 3}
    assert admin.apps["shop"]["version"] == 3


def test_rollback_with_a_viewer_key_is_not_authorised(fake: FakeServer) -> None:
    done = run("rollback", "shop", "--server", fake.url, "--key", VIEWER_KEY)
    assert done.exit_code == 4
    assert fake.apps["shop"]["version"] == 3


def test_remove_needs_yes_when_it_cannot_ask_and_then_removes(admin: FakeServer) -> None:
    done = run("remove", "blog")
    assert done.exit_code == 2
    assert "pass --yes to confirm" in done.stderr
    assert "blog" in admin.apps
    done = run("remove", "blog", "--yes")
    assert (done.exit_code, done.stdout) == (0, "removed app blog\n")
    assert "blog" not in admin.apps
    done = run("remove", "blog", "--yes")
    assert done.exit_code == 1
    assert "404 AppNotFound" in done.stderr


def test_a_created_key_is_printed_once_alone_on_stdout_and_works(admin: FakeServer) -> None:
    done = run("keys", "create", "--role", "viewer", "--app", "blog", "--name", "dashboards")
    assert done.exit_code == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("tfk_")
    assert "shown only now" in done.stderr
    [created] = [k for k in admin.keys if k.name == "dashboards"]
    assert (created.role, created.app) == ("viewer", "blog")
    listed = run("list", "--json", "--key", secret)
    assert [a["name"] for a in json.loads(listed.stdout)["apps"]] == ["blog"]


def test_keys_create_names_by_default_and_says_what_a_role_needs(admin: FakeServer) -> None:
    done = run("keys", "create", "--role", "deployer", "--app", "shop", "--json")
    assert json.loads(done.stdout)["name"] == "shop-deployer"
    done = run("keys", "create", "--role", "deployer")
    assert done.exit_code == 2
    assert "a deployer key works on one app: name it with --app APP" in done.stderr
    done = run("keys", "create", "--role", "admin", "--app", "shop")
    assert done.exit_code == 2
    assert "drop --app" in done.stderr
    done = run("keys", "create", "--role", "owner", "--app", "shop")
    assert done.exit_code == 2  # click's own usage error, listing the roles
    assert "viewer" in done.stderr


def test_keys_list_shows_prefixes_never_secrets(admin: FakeServer) -> None:
    done = run("keys", "list")
    assert done.exit_code == 0
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["PREFIX", "NAME", "ROLE", "APP", "CREATED", "REVOKED"]
    assert lines[1].split()[:4] == ["tfk_a0000001", "root", "admin", "(all)"]
    assert lines[2].split()[:4] == ["tfk_b0000002", "shop-viewer", "viewer", "shop"]
    assert lines[2].split()[-1] == "-"  # not revoked
    assert ADMIN_KEY not in done.stdout
    assert VIEWER_KEY not in done.stdout


@pytest.mark.parametrize("which", ["b0000002", "tfk_b0000002", VIEWER_KEY])
def test_a_key_revoked_by_id_prefix_or_text_stops_working_at_once(admin: FakeServer, which: str) -> None:
    assert run("list", "--key", VIEWER_KEY).exit_code == 0
    done = run("keys", "revoke", which)
    assert (done.exit_code, done.stdout) == (0, "revoked key tfk_b0000002 (shop-viewer)\n")
    assert run("list", "--key", VIEWER_KEY).exit_code == 4


def test_revoking_a_key_that_is_not_there_lists_the_ones_that_are(admin: FakeServer) -> None:
    done = run("keys", "revoke", "nope")
    assert done.exit_code == 1
    assert "no key 'nope': the keys are tfk_a0000001, tfk_b0000002" in done.stderr
