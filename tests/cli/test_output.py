"""What verbs print: rich tables on a terminal, plain columns in a pipe, one JSON document with --json."""

from __future__ import annotations

import io
import json

from rich.console import Console

from tests.cli.conftest import run
from tests.cli.fake_server import ADMIN_KEY, FakeServer
from triggerfish.cli.output import Output, cell, moment

ROWS = [["shop", 3, None], ["blog [beta]", 1, True]]


def terminal() -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    return Output(console=Console(file=buffer, force_terminal=True, width=100, color_system="standard")), buffer


def pipe() -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    return Output(console=Console(file=buffer, force_terminal=False, width=100)), buffer


def test_a_pipe_gets_plain_columns_with_nothing_but_text() -> None:
    out, buffer = pipe()
    assert not out.terminal
    out.table(["app", "live version", "ok"], ROWS)
    assert buffer.getvalue() == (
        "APP          LIVE VERSION  OK\nshop         3             -\nblog [beta]  1             yes\n"
    )


def test_a_terminal_gets_a_coloured_table_and_user_text_is_not_read_as_markup() -> None:
    out, buffer = terminal()
    assert out.terminal
    out.table(["app", "live version", "ok"], ROWS, title="apps")
    shown = buffer.getvalue()
    assert "\x1b[" in shown  # colour
    assert "─" in shown  # the rule under the header
    assert "blog [beta]" in shown  # square brackets are the app's name, not rich markup
    assert "APP" not in shown  # headers as given, not shouted as in a pipe


def test_a_long_value_is_never_cut_in_a_pipe() -> None:
    out, buffer = pipe()
    long = "x" * 300
    out.table(["id"], [[long]])
    assert long in buffer.getvalue()


def test_a_newline_in_a_value_keeps_one_row_per_line() -> None:
    out, buffer = pipe()
    out.table(["body"], [["two\nlines"]])
    assert buffer.getvalue().splitlines() == ["BODY", "two\\nlines"]


def test_json_mode_prints_the_document_and_nothing_else() -> None:
    buffer = io.StringIO()
    out = Output(True, console=Console(file=buffer, force_terminal=True))
    assert not out.terminal
    assert out.json({"apps": [{"name": "shop"}]})
    assert json.loads(buffer.getvalue()) == {"apps": [{"name": "shop"}]}
    plain, _ = pipe()
    assert not plain.json({"ignored": True})


def test_fields_are_label_value_lines_in_a_pipe() -> None:
    out, buffer = pipe()
    out.fields([("memory_mb", 128), ("env", {}), ("pids", [4, 5])], title="settings")
    assert buffer.getvalue() == "settings:\n  memory_mb: 128\n  env: -\n  pids: 4, 5\n"


def test_cells_and_times() -> None:
    values: list[object] = [None, False, 2.50, [], {"a": 1}, "x"]
    assert [cell(v) for v in values] == ["-", "no", "2.5", "-", '{"a":1}', "x"]
    assert moment(0) == "1970-01-01 00:00:00Z"
    assert moment(None) is None


# --- the verbs, as a person and as a script see them ---------------------------------------------------


def test_list_in_a_pipe_is_greppable_and_on_a_terminal_is_a_table(fake: FakeServer) -> None:
    args = ("list", "--server", fake.url, "--key", ADMIN_KEY)
    plain = run(*args)
    assert plain.exit_code == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines == [
        "APP   LIVE VERSION  CANARY   FUNCTIONS",
        "blog  1             -        1",
        "shop  3             4 (10%)  2",
    ]
    assert "\x1b[" not in plain.stdout

    shown = run(*args, env={"TTY_COMPATIBLE": "1"})
    assert shown.exit_code == 0
    assert "\x1b[" in shown.stdout
    assert "live version" in shown.stdout


def test_list_with_json_is_the_servers_document(fake: FakeServer) -> None:
    done = run("list", "--json", "--server", fake.url, "--key", ADMIN_KEY, env={"TTY_COMPATIBLE": "1"})
    assert done.exit_code == 0
    apps = json.loads(done.stdout)["apps"]
    assert [a["name"] for a in apps] == ["blog", "shop"]


def test_a_progress_bar_on_a_terminal_plain_lines_in_a_pipe_nothing_with_json() -> None:
    from triggerfish.cli.progress import Bar

    screen = io.StringIO()
    with Bar(Output(console=Console(force_terminal=True, file=screen, width=100)), "replaying bus default") as bar:
        bar.update(0, 40, "replay", "events")
        bar.update(40, 40, "replay", "events", last=True)
    assert "replaying bus default: replay" in screen.getvalue()
    assert "40/40" in screen.getvalue()
    assert "100%" in screen.getvalue()
    pipe, err = io.StringIO(), io.StringIO()
    with Bar(Output(console=Console(file=pipe)), "replaying bus default", err=err) as bar:
        bar.update(0, 40, "replay", "events")
        bar.update(10, 40, "replay", "events")  # within a second of the first line: not printed
        bar.update(40, 40, "replay", "events", last=True)
    assert pipe.getvalue() == ""  # standard output is the verb's result alone
    assert err.getvalue().splitlines() == [
        "replaying bus default: 0/40 events (0%) [replay]",
        "replaying bus default: 40/40 events (100%) [replay]",
    ]
    as_json, err = io.StringIO(), io.StringIO()
    with Bar(Output(True, console=Console(force_terminal=True, file=as_json)), "replaying bus default", err=err) as bar:
        bar.update(40, 40, "replay", "events", last=True)
    assert as_json.getvalue() == err.getvalue() == ""
