"""An app imports packages from the directories given as `extra_paths` (where a deploy installed its
requirements): they come first on its sys.path, their .pth files are read, and the app loads and runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.conftest import request
from triggerfish.errors import AppLoadError
from triggerfish.runtime import protocol
from triggerfish.runtime.process_runner import ProcessRunner

APP = """
import triggerfish
import greetlib
import pthlib

app = triggerfish.App("greeter")


@app.function()
def greet(event, context):
    return {"greeting": greetlib.greet(event["name"]), "pth": pthlib.WHERE, "origin": greetlib.__file__}
"""


def _project(tmp_path: Path) -> tuple[Path, Path]:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP, encoding="utf-8")
    site = tmp_path / "deps" / "site-packages"
    (site / "greetlib").mkdir(parents=True)
    (site / "greetlib" / "__init__.py").write_text("def greet(name):\n    return f'hello {name}'\n", encoding="utf-8")
    # A package reached only through a .pth file, as some installs lay themselves out.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "pthlib.py").write_text("WHERE = 'via .pth'\n", encoding="utf-8")
    (site / "extra.pth").write_text(f"{tmp_path / 'elsewhere'}\n", encoding="utf-8")
    return app_dir, site


async def test_an_app_imports_a_package_from_an_extra_path_and_runs(tmp_path: Path) -> None:
    app_dir, site = _project(tmp_path)
    runner = await ProcessRunner.start(str(app_dir / "app.py"), work_dir=tmp_path / "work", extra_paths=[str(site)])
    try:
        outcome = await runner.run(request("greet", {"name": "ada"}))
    finally:
        await runner.close()
    assert outcome.ok, outcome.error
    assert outcome.result["greeting"] == "hello ada"
    assert outcome.result["pth"] == "via .pth"
    assert outcome.result["origin"].startswith(str(site))


async def test_without_the_extra_path_the_missing_package_is_named(tmp_path: Path) -> None:
    app_dir, _site = _project(tmp_path)
    with pytest.raises(AppLoadError, match="greetlib"):
        await ProcessRunner.start(str(app_dir / "app.py"), work_dir=tmp_path / "work")


def test_load_app_carries_extra_paths_and_defaults_to_none() -> None:
    message = protocol.LoadApp(target="app.py", version="1", work_dir="/w", extra_paths=["/deps/site-packages"])
    assert protocol.decode(protocol.encode(message)[4:]) == message
    assert protocol.LoadApp(target="app.py", version="1", work_dir="/w").extra_paths == []
