"""`triggerfish dev --lease-margin`: how long past its timeout an async invocation whose run died stays leased.

The kill -9 tests of the examples (tests/examples) run with a short margin and show it end to end; here, that the
option reaches the platform as given, that leaving it out keeps the platform's default, and that a margin the
platform refuses is refused before anything starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from triggerfish.cli import dev as dev_command
from triggerfish.cli.data_lock import DataDirLock
from triggerfish.server.platform import Platform

APP = "import triggerfish\n\napp = triggerfish.App('leases')\n"


def platform_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> dict[str, Any]:
    """The Platform options `triggerfish dev APP ARGS` would start with (nothing is started, no lock is taken)."""
    (tmp_path / "app.py").write_text(APP)
    seen: dict[str, Any] = {}

    def run(target: str, host: str, port: int, reload: bool, options: dict[str, Any], *rest: Any, **kw: Any) -> str:
        seen.update(options)
        return "not started"

    def run_platform(main: Coroutine[Any, Any, int] | str) -> int:
        assert main == "not started"
        return 0

    monkeypatch.setattr(dev_command, "_run", run)
    monkeypatch.setattr(dev_command, "run_platform", run_platform)
    monkeypatch.setattr(DataDirLock, "acquire", lambda self: None)
    answer = CliRunner().invoke(
        dev_command.dev, [str(tmp_path / "app.py"), "--data-dir", str(tmp_path / "data"), *args]
    )
    assert answer.exit_code == 0, answer.output
    return seen


def test_the_lease_margin_reaches_the_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert platform_options(monkeypatch, tmp_path, "--lease-margin", "1.5")["lease_margin"] == 1.5


def test_without_the_option_the_platform_keeps_its_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert "lease_margin" not in platform_options(monkeypatch, tmp_path)
    assert inspect.signature(Platform).parameters["lease_margin"].default == 30.0  # docs/dev.md's default


@pytest.mark.parametrize("margin", ["0", "-1", "3601"])
def test_a_margin_the_platform_would_refuse_is_refused_first(tmp_path: Path, margin: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    answer = CliRunner().invoke(
        dev_command.dev, [str(tmp_path / "app.py"), "--data-dir", str(tmp_path / "data"), "--lease-margin", margin]
    )
    assert answer.exit_code == 2
    assert "--lease-margin" in answer.output
    assert not (tmp_path / "data").exists()
