"""`list`, `describe`, `status`, `queues ...` and `events replay` against a real `triggerfish dev`."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Dev, run


@pytest.fixture
def env(dev: Dev) -> dict[str, str]:
    return {"TRIGGERFISH_SERVER": dev.url}


def test_list_on_the_dev_server_lists_its_apps_functions(env: dict[str, str]) -> None:
    done = run("list", env=env)
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "app cli version 1"
    assert lines[1].split()[:2] == ["FUNCTION", "TRIGGERS"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"quote", "refund", "audit"}
    assert 'event default {"source":["tests"]}' in rows["audit"]
    assert "direct invoke only" in rows["quote"]
    document = json.loads(run("list", "--json", env=env).stdout)
    assert [f["name"] for f in document["functions"]] == ["quote", "refund", "audit"]


def test_describe_shows_settings_triggers_and_the_pool(env: dict[str, str]) -> None:
    run("invoke", "quote", "-d", '{"items": 1}', env=env)
    done = run("describe", "quote", env=env)
    assert done.exit_code == 0, done.stderr
    out = done.stdout
    assert "function quote:\n  name: quote\n  handler: app:quote\n  version: 1\n" in out
    assert "settings:\n" in out
    assert "  memory_mb: 128\n" in out
    assert "triggers:\n  -: direct invoke only\n" in out
    assert "pool:\n" in out
    invocations = [line for line in out.splitlines() if line.startswith("  invocations: ")]
    assert len(invocations) == 1
    assert int(invocations[0].split(": ")[1]) >= 1
    refund = json.loads(run("describe", "refund", "--json", env=env).stdout)
    assert refund["settings"]["retries"] == 0
    missing = run("describe", "nope", env=env)
    assert (missing.exit_code, "404 FunctionNotFound" in missing.stderr) == (1, True)


def test_status_of_the_dev_server_shows_its_one_app(dev: Dev, env: dict[str, str]) -> None:
    done = run("status", env=env)
    assert done.exit_code == 0, done.stderr
    assert f"server: {dev.url} (from TRIGGERFISH_SERVER)" in done.stdout
    assert "key: none" in done.stdout
    [app] = [line for line in done.stdout.splitlines() if line.startswith("cli ")]
    assert app.split() == ["cli", "1", "-", "3"]


def test_send_receive_and_acknowledge(env: dict[str, str]) -> None:
    sent = run("queues", "send", "emails", "-d", "hello ada", "--attribute", "kind=welcome", env=env)
    assert sent.exit_code == 0, sent.stderr
    message_id = sent.stdout.strip()
    stats = json.loads(run("queues", "stats", "emails", "--json", env=env).stdout)
    assert stats["stats"]["visible"] == 1

    got = run("queues", "receive", "emails", "--wait", "5", "--ack", "--json", env=env)
    document = json.loads(got.stdout)
    [message] = document["messages"]
    assert (message["message_id"], message["body"], message["attributes"]) == (
        message_id,
        "hello ada",
        {"kind": "welcome"},
    )
    assert document["acked"] == [True]
    assert json.loads(run("queues", "stats", "emails", "--json", env=env).stdout)["stats"]["depth"] == 0


def test_receive_prints_a_table_and_an_empty_queue_says_so(env: dict[str, str]) -> None:
    run("queues", "send", "emails", env=env, input="from stdin")
    done = run("queues", "receive", "emails", "--ack", env=env)
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["MESSAGE", "ID", "RECEIVES", "SENT", "BODY"]
    assert lines[1].endswith("from stdin")
    assert lines[2] == "acknowledged 1 of 1"
    assert run("queues", "receive", "emails", env=env).stdout == "no message in emails\n"


def test_dead_letters_are_redriven_and_a_purge_needs_yes(env: dict[str, str]) -> None:
    for n in range(2):
        assert run("queues", "send", "emails.failed", "-d", f"bounced {n}", env=env).exit_code == 0
    before = run("queues", "stats", env=env).stdout
    [row] = [line for line in before.splitlines() if line.startswith("emails ")]
    assert row.split()[-2:] == ["emails.failed", "(2)"]

    moved = run("queues", "redrive", "emails", env=env)
    assert (moved.exit_code, moved.stdout) == (0, "moved 2 messages from emails.failed to emails\n")

    refused = run("queues", "purge", "emails", env=env)
    assert refused.exit_code == 2
    assert "pass --yes to confirm" in refused.stderr
    purged = run("queues", "purge", "emails", "--yes", "--json", env=env)
    assert json.loads(purged.stdout) == {"queue": "emails", "purged": 2}


def test_queue_mistakes(env: dict[str, str]) -> None:
    unknown = run("queues", "send", "emials", "-d", "x", env=env)
    assert unknown.exit_code == 1
    assert "404 QueueNotFound" in unknown.stderr
    assert run("queues", "send", "emails", env=env).exit_code == 2  # no body
    pairs = run("queues", "send", "emails", "-d", "x", "--attribute", "kind", env=env)
    assert (pairs.exit_code, "--attribute 'kind' is not NAME=VALUE" in pairs.stderr) == (2, True)
    itself = run("queues", "redrive", "audit", "--from", "audit", env=env)
    assert itself.exit_code == 1
    assert "(400 InvalidInput): body: dead_letter names 'audit' itself" in itself.stderr


def test_an_event_put_reaches_its_rule_and_a_replay_delivers_it_again(env: dict[str, str]) -> None:
    put = run("events", "put", "--type", "Audited", "--source", "tests", "--data", "{}", env=env)
    assert put.exit_code == 0, put.stderr
    event_id = put.stdout.strip()
    first = json.loads(run("queues", "receive", "audit", "--wait", "10", "--ack", "--json", env=env).stdout)
    assert [m["body"] for m in first["messages"]] == [event_id]

    replayed = run("events", "replay", "--start", "1h", "--rule", "audit", env=env)
    assert (replayed.exit_code, replayed.stdout) == (0, "queued 1 deliveries of bus default to rule audit\n")
    again = json.loads(run("queues", "receive", "audit", "--wait", "10", "--ack", "--json", env=env).stdout)
    assert [m["body"] for m in again["messages"]] == [event_id]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "yesterday"], "--start 'yesterday' is not a time"),
        (["--start", "2024-05-01T00:00:00"], "has no time zone: add one (Z for UTC, or +02:00)"),
    ],
)
def test_replay_times_that_are_not_times(env: dict[str, str], args: list[str], message: str) -> None:
    done = run("events", "replay", *args, env=env)
    assert done.exit_code == 2
    assert message in done.stderr


def test_replay_to_a_rule_that_does_not_exist(env: dict[str, str]) -> None:
    done = run("events", "replay", "--start", "2024-05-01T00:00:00Z", "--rule", "nope", "--json", env=env)
    assert done.exit_code == 1
    assert "404 RuleNotFound" in done.stderr
