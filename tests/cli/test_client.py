"""The shared client: where the server and key come from, and the exit code of every kind of failure."""

from __future__ import annotations

import os
import socket
import stat
import tomllib
from pathlib import Path

import pytest

from tests.cli.conftest import run
from tests.cli.fake_server import ADMIN_KEY, VIEWER_KEY, FakeServer
from triggerfish.cli.client import API, Client, CliError, discover
from triggerfish.cli.credentials import read_login, write_login


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    # Nothing listens on it once the probe is closed: connections are refused.
    return port


# --- discovery ---------------------------------------------------------------------------------------


def test_with_nothing_given_it_is_localhost_8080_and_no_key(clean_environment: Path) -> None:
    target = discover(None, None, None)
    assert (target.server, target.server_from, target.key, target.app) == (
        "http://127.0.0.1:8080",
        "the default",
        None,
        None,
    )


def test_the_flag_beats_the_environment_which_beats_the_config_file(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_login(clean_environment, "http://file.example:1", "tfk_fromfile_" + "x" * 32)
    target = discover(None, None, None)
    assert (target.server, target.key) == ("http://file.example:1", "tfk_fromfile_" + "x" * 32)
    assert target.server_from == target.key_from == f"the config file {clean_environment}"

    monkeypatch.setenv("TRIGGERFISH_SERVER", "http://env.example:2/")
    monkeypatch.setenv("TRIGGERFISH_KEY", "tfk_from_env_key")
    monkeypatch.setenv("TRIGGERFISH_APP", "blog")
    target = discover(None, None, None)
    assert (target.server, target.server_from) == ("http://env.example:2", "TRIGGERFISH_SERVER")
    assert (target.key, target.key_from) == ("tfk_from_env_key", "TRIGGERFISH_KEY")
    assert (target.app, target.app_from) == ("blog", "TRIGGERFISH_APP")

    target = discover("https://flag.example", "tfk_fromflag_key", "shop")
    assert (target.server, target.server_from) == ("https://flag.example", "--server")
    assert (target.key, target.key_from) == ("tfk_fromflag_key", "--key")
    assert (target.app, target.app_from) == ("shop", "--app")


def test_a_logged_in_key_is_sent_only_to_the_server_it_was_saved_for(clean_environment: Path) -> None:
    write_login(clean_environment, "http://a.example", "tfk_aaaaaaaa_" + "a" * 32)
    write_login(clean_environment, "http://b.example", "tfk_bbbbbbbb_" + "b" * 32)
    assert discover(None, None, None).server == "http://b.example"  # the last login is the default
    assert discover("http://a.example/", None, None).key == "tfk_aaaaaaaa_" + "a" * 32
    assert discover("http://elsewhere.example", None, None).key is None


def test_a_server_that_is_not_an_http_url_is_bad_input_naming_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIGGERFISH_SERVER", "127.0.0.1:8080")
    done = run("list")
    assert done.exit_code == 2
    assert (
        "TRIGGERFISH_SERVER gives the server '127.0.0.1:8080', which is not an http:// or https:// URL" in done.stderr
    )


def test_a_broken_config_file_is_bad_input_saying_how_to_fix_it(clean_environment: Path) -> None:
    clean_environment.parent.mkdir(parents=True)
    clean_environment.write_text('server = "http://x\n', encoding="utf-8")
    done = run("status")
    assert done.exit_code == 2
    assert f"the config file {clean_environment} is not valid TOML" in done.stderr
    assert "line 1" in done.stderr
    assert "run `triggerfish login` again" in done.stderr


# --- login and its file ------------------------------------------------------------------------------


def test_login_checks_the_key_then_writes_it_privately(fake: FakeServer, clean_environment: Path) -> None:
    done = run("login", fake.url, "--key", ADMIN_KEY)
    assert done.exit_code == 0, done.stderr
    assert f"logged in to {fake.url} with key tfk_a0000001" in done.stdout
    assert ADMIN_KEY not in done.stdout  # the secret is not echoed
    assert stat.S_IMODE(os.stat(clean_environment).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(clean_environment.parent).st_mode) == 0o700
    document = tomllib.loads(clean_environment.read_text(encoding="utf-8"))
    assert document == {"server": fake.url, "keys": {fake.url: ADMIN_KEY}}
    # Later verbs find both without flags.
    assert run("keys", "list").exit_code == 0
    assert fake.seen_keys[-1] == ADMIN_KEY


def test_login_without_a_config_variable_writes_under_the_home_directory(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIGGERFISH_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert run("login", fake.url, "--key", VIEWER_KEY).exit_code == 0
    path = tmp_path / "home" / ".config" / "triggerfish" / "config.toml"
    assert read_login(path).keys == {fake.url: VIEWER_KEY}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_login_asks_for_the_key_when_it_is_not_given(fake: FakeServer, clean_environment: Path) -> None:
    done = run("login", fake.url, input=ADMIN_KEY + "\n")
    assert done.exit_code == 0, done.stderr
    assert read_login(clean_environment).keys[fake.url] == ADMIN_KEY


def test_login_with_a_refused_key_exits_4_and_saves_nothing(fake: FakeServer, clean_environment: Path) -> None:
    done = run("login", fake.url, "--key", "tfk_wrongkey_" + "z" * 32)
    assert done.exit_code == 4
    assert "the key tfk_wrongkey (from --key) was not accepted" in done.stderr
    assert not clean_environment.exists()


def test_login_to_no_server_exits_3_unless_told_not_to_check(clean_environment: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run("login", url, "--key", ADMIN_KEY)
    assert done.exit_code == 3
    assert not clean_environment.exists()
    assert run("login", url, "--key", ADMIN_KEY, "--no-check").exit_code == 0
    assert read_login(clean_environment).server == url


def test_logging_in_again_keeps_other_servers_keys(fake: FakeServer, clean_environment: Path) -> None:
    write_login(clean_environment, "http://other.example", "tfk_otherkey_" + "o" * 32)
    assert run("login", fake.url, "--key", ADMIN_KEY).exit_code == 0
    login = read_login(clean_environment)
    assert login.server == fake.url
    assert login.keys == {"http://other.example": "tfk_otherkey_" + "o" * 32, fake.url: ADMIN_KEY}


# --- exit codes --------------------------------------------------------------------------------------


def test_no_server_exits_3_saying_where_it_looked() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run("status", "--server", url)
    assert done.exit_code == 3
    assert (
        done.stderr == f"error: server unreachable at {url} (from --server): is `triggerfish dev` or"
        " `triggerfish serve` running there? Give another with --server URL (or $TRIGGERFISH_SERVER)\n"
    )


def test_no_key_exits_4_saying_how_to_give_one(fake: FakeServer) -> None:
    done = run("keys", "list", "--server", fake.url)
    assert done.exit_code == 4
    assert "no key was sent: give one with --key, TRIGGERFISH_KEY, or `triggerfish login SERVER --key KEY`" in (
        done.stderr
    )


def test_a_key_without_the_role_exits_4_naming_the_key_by_prefix_and_its_source(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGERFISH_SERVER", fake.url)
    monkeypatch.setenv("TRIGGERFISH_KEY", VIEWER_KEY)
    done = run("keys", "list")
    assert done.exit_code == 4
    assert "403 Forbidden: a viewer key may not do this; it needs admin" in done.stderr
    assert "the key tfk_b0000002 (from TRIGGERFISH_KEY) lacks the role for this" in done.stderr
    assert VIEWER_KEY not in done.stderr


def test_a_revoked_key_exits_4(fake: FakeServer) -> None:
    fake.keys[1].revoked_at = 1.0
    done = run("list", "--server", fake.url, "--key", VIEWER_KEY)
    assert done.exit_code == 4
    assert "the key tfk_b0000002 (from --key) was not accepted" in done.stderr


def test_a_refusal_exits_1_with_the_servers_code_and_message(fake: FakeServer) -> None:
    done = run("rollback", "shop", "--to", "7", "--server", fake.url, "--key", ADMIN_KEY)
    assert done.exit_code == 1
    assert done.stderr == (
        "error: the server refused (422 DeployFailed): app 'shop' has no version 7; it has [1, 2, 3, 4]\n"
    )


def test_the_error_carries_the_servers_document_for_verbs_that_show_more(fake: FakeServer) -> None:
    with Client(fake.url, ADMIN_KEY) as client, pytest.raises(CliError) as caught:
        client.request("POST", client.app_api("/rollback", "shop"), json={"to": 9})
    assert (caught.value.exit_code, caught.value.status, caught.value.code) == (1, 422, "DeployFailed")
    assert caught.value.error["message"].startswith("app 'shop' has no version 9")


# --- per-app paths -----------------------------------------------------------------------------------


def test_per_app_calls_go_under_the_app_with_app_and_to_the_dev_paths_without(clean_environment: Path) -> None:
    with Client(None, None, app="shop a") as client:
        assert client.app_api("/functions") == f"{API}/apps/shop%20a/functions"
        assert client.events_path() == "/-/apps/shop%20a/events"
        assert client.api("/keys") == f"{API}/keys"
    with Client() as client:
        assert client.app_api("/functions") == f"{API}/functions"
        assert client.app_api("/functions", "blog") == f"{API}/apps/blog/functions"
        assert client.events_path() == "/-/events"


def test_invoke_with_the_app_from_the_environment_reaches_that_apps_function(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGERFISH_APP", "shop")
    done = run("invoke", "quote", "-d", '{"items": 2}', "--server", fake.url, "--key", VIEWER_KEY)
    assert done.exit_code == 0, done.stderr
    assert '"app": "shop"' in done.stdout
    assert '"event": {"items": 2}' in done.stdout


def test_a_scoped_key_sees_no_other_app(fake: FakeServer) -> None:
    done = run("invoke", "render", "--app", "blog", "--server", fake.url, "--key", VIEWER_KEY)
    assert done.exit_code == 1
    assert "404 AppNotFound" in done.stderr


def test_the_config_file_round_trips_keys_with_characters_toml_must_escape(clean_environment: Path) -> None:
    odd = 'tfk_12345678_"quoted"\\back\x7fdel\ttab'
    write_login(clean_environment, "http://odd.example", odd)
    assert read_login(clean_environment).keys == {"http://odd.example": odd}
