"""`triggerfish events test-pattern`: exit 0 on a match, 1 on no match, 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from triggerfish.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "triggerfish"
EXAMPLES = ROOT / "examples" / "patterns"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "events", "test-pattern", *args], capture_output=True, text=True, timeout=30, cwd=ROOT
    )


# --- the real console script, once per exit code --------------------------------------------------------


def test_script_prints_match_for_the_readme_example() -> None:
    done = run_script(
        "--pattern",
        "@examples/patterns/order-placed.pattern.json",
        "--event",
        "@examples/patterns/order-placed.event.json",
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "match\n", "")


def test_script_prints_no_match() -> None:
    done = run_script("--pattern", '{"source": ["bank"]}', "--event", f"@{EXAMPLES / 'order-placed.event.json'}")
    assert (done.returncode, done.stdout, done.stderr) == (1, "no match\n", "")


def test_script_rejects_an_invalid_pattern_with_the_reason() -> None:
    done = run_script("--pattern", '{"source": "shop"}', "--event", "{}")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "invalid event pattern at source: a value to match must be in an array" in done.stderr


# --- the rest through click's runner ---------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["events", "test-pattern", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_eventbridge_pattern_on_a_cloudevent(runner: CliRunner) -> None:
    pattern = json.dumps({"detail-type": ["order.placed"], "detail": {"country": ["NZ"]}})
    event = json.dumps(
        {"specversion": "1.0", "id": "1", "source": "s", "type": "order.placed", "data": {"country": "NZ"}}
    )
    assert invoke(runner, "-p", pattern, "-e", event) == (0, "match\n", "")


def test_files_and_stdin(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"source": [{"prefix": "sh"}]}', encoding="utf-8")
    assert invoke(runner, "--pattern", f"@{tmp_path / 'p.json'}", "--event", "@-", stdin='{"source": "shop"}') == (
        0,
        "match\n",
        "",
    )
    assert invoke(runner, "--pattern", f"@{tmp_path / 'p.json'}", "--event", '{"source": "bank"}')[:2] == (
        1,
        "no match\n",
    )


@pytest.mark.parametrize(
    ("pattern", "event", "message"),
    [
        ('{"source": ["a"]', "{}", "pattern: invalid JSON at line 1"),
        ('{"a": ["x"], "a": ["y"], "a": "z"}', "{}", "must be in an array"),
        ('{"n": [{"numeric": [">", 1e10]}]}', "{}", "between -5e9 and 5e9"),
        ("[]", "{}", "a pattern is a JSON object, not an array"),
        ('{"source": ["a"]}', '{"source": ', "event: invalid JSON"),
        ('{"source": ["a"]}', "[1]", "must be a JSON object"),
        ('{"source": ["a"]}', '{"x": 1, "x": 2}', "duplicate key 'x'"),
        ("@/no/such/file.json", "{}", "cannot read the pattern file '/no/such/file.json'"),
        ('{"source": ["a"]}', "@/no/such/event.json", "cannot read the event file"),
    ],
)
def test_bad_input_exits_2_with_the_reason(runner: CliRunner, pattern: str, event: str, message: str) -> None:
    code, out, err = invoke(runner, "--pattern", pattern, "--event", event)
    assert code == 2
    assert out == ""
    assert message in err


def test_a_directory_or_binary_file_is_unreadable(runner: CliRunner, tmp_path: Path) -> None:
    assert invoke(runner, "--pattern", f"@{tmp_path}", "--event", "{}")[0] == 2
    (tmp_path / "bad.json").write_bytes(b'{"source": ["\xff"]}')
    code, _, err = invoke(runner, "--pattern", f"@{tmp_path / 'bad.json'}", "--event", "{}")
    assert code == 2
    assert "cannot read the pattern file" in err


def test_both_options_are_required(runner: CliRunner) -> None:
    code, _, err = invoke(runner, "--pattern", '{"a": ["b"]}')
    assert code == 2
    assert "Missing option '--event'" in err


def test_help_names_the_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["events", "test-pattern", "--help"])
    assert result.exit_code == 0
    assert '"match" (exit 0)' in result.stdout
    assert "exits 2" in result.stdout
