"""`triggerfish check APP`: the app loads as the platform loads it, or the reason is printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from triggerfish.cli.main import cli

APPS = Path(__file__).parent / "apps"


def test_lists_functions_and_triggers_of_a_real_app() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "triggerfish", "check", str(APPS / "shop.py")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "app 'shop'" in done.stdout
    assert "create_order" in done.stdout
    assert "http POST /orders" in done.stdout


def test_import_error_shows_the_traceback_and_exits_2() -> None:
    result = CliRunner().invoke(cli, ["check", str(APPS / "broken_import.py")])
    assert result.exit_code == 2
    assert "KeyError: 'missing_key'" in result.output
    assert "broken_import.py" in result.output


def test_command_line_override_wins_over_the_decorator() -> None:
    result = CliRunner().invoke(cli, ["check", str(APPS / "shop.py"), "--set", "echo.memory_mb=512"])
    assert result.exit_code == 0, result.output
    echo = next(line for line in result.output.splitlines() if line.startswith("echo "))
    assert "512 MB" in echo


def test_invalid_override_names_the_setting_and_the_range() -> None:
    result = CliRunner().invoke(cli, ["check", str(APPS / "shop.py"), "--set", "echo.memory_mb=64"])
    assert result.exit_code == 2
    assert "memory_mb must be from 128 to 10240" in result.output


def test_stage_from_the_config_file_applies(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import triggerfish\napp = triggerfish.App('demo')\n\n"
        "@app.function(timeout=5)\ndef work(event):\n    return 1\n"
    )
    (tmp_path / "triggerfish.toml").write_text(
        "[functions.work]\ntimeout = 10\n\n[stages.prod.functions.work]\ntimeout = 20\n"
    )
    plain = CliRunner().invoke(cli, ["check", str(tmp_path / "app.py")])
    prod = CliRunner().invoke(cli, ["check", str(tmp_path / "app.py"), "--stage", "prod"])
    assert plain.exit_code == 0, plain.output
    assert prod.exit_code == 0, prod.output
    assert "10s" in plain.output
    assert "20s" in prod.output
    unknown = CliRunner().invoke(cli, ["check", str(tmp_path / "app.py"), "--stage", "qa"])
    assert unknown.exit_code == 2
    assert "unknown stage 'qa'" in unknown.output


def test_a_directory_runs_the_app_its_triggerfish_toml_names_with_its_settings(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "main.py").write_text(
        "import triggerfish\n\nweb = triggerfish.App('site')\nother = triggerfish.App('other')\n\n\n"
        "@web.function\ndef hello(event, context):\n    return 'hi'\n"
    )
    (tmp_path / "site" / "triggerfish.toml").write_text('app = "main.py:web"\n\n[functions.hello]\nmemory_mb = 512\n')
    done = subprocess.run(
        [sys.executable, "-m", "triggerfish", "check", "site"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("app 'site': 1 function\n")
    assert "512 MB" in done.stdout


def test_a_directory_without_an_app_says_how_to_name_one(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "triggerfish", "check", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"no app in {tmp_path.resolve()}: there is no app.py" in done.stderr
