"""Loading apps from files and modules, failing loudly, describing functions, and specs as JSON."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from triggerfish.app import App
from triggerfish.errors import AppLoadError, InvocationError
from triggerfish.http_auth import hmac_auth
from triggerfish.loader import describe_functions, load_app, spec_from_dict, spec_to_dict

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test imports apps afresh and leaves sys.path and sys.modules as it found them."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def load_error(target: str | Path) -> AppLoadError:
    with pytest.raises(AppLoadError) as caught:
        load_app(target)
    return caught.value


# --- the forms of a target -------------------------------------------------------------------


def test_load_a_file_finds_its_one_app() -> None:
    app = load_app(APPS / "shop.py")
    assert app.name == "shop"
    assert {"echo", "add", "create_order", "on_order_created"} <= set(app.functions)


def test_load_a_file_with_attr_and_a_module_with_attr(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_app(f"{APPS / 'two_apps.py'}:admin").name == "admin"
    monkeypatch.chdir(ROOT)
    assert load_app("tests.apps.two_apps:public").name == "public"
    assert load_app("tests.apps.shop").name == "shop"


def test_a_file_can_import_its_sibling_modules(tmp_path: Path) -> None:
    write(tmp_path, "orders_lib.py", "def total(items):\n    return sum(items)\n")
    write(
        tmp_path,
        "sibling_app.py",
        """
        import triggerfish
        from orders_lib import total

        app = triggerfish.App("sib")

        @app.function()
        def handler(event):
            return total(event)
        """,
    )
    app = load_app(tmp_path / "sibling_app.py")
    assert app.functions["handler"].handler([1, 2]) == 3
    assert app.functions["handler"].ref == "sibling_app:handler"


def test_an_app_file_named_like_an_imported_module_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "json.py", "import triggerfish\napp = triggerfish.App('j')\n")
    message = str(load_error(tmp_path / "json.py"))
    assert "a module named 'json' is already imported" in message
    assert "importing the app raised" not in message
    import json

    assert json.dumps([1]) == "[1]", "the real module must be left in place"


def test_two_app_files_with_one_name_load_one_after_the_other(tmp_path: Path) -> None:
    for label in ("first", "second"):
        directory = tmp_path / label
        directory.mkdir()
        write(
            directory,
            "app.py",
            f"import triggerfish\napp = triggerfish.App({label!r})\napp.function(name='f')(print)\n",
        )
        assert load_app(directory / "app.py").name == label


def test_a_file_name_that_is_not_a_module_name(tmp_path: Path) -> None:
    write(tmp_path, "my-app.py", "")
    message = str(load_error(tmp_path / "my-app.py"))
    assert "'my-app' is not a valid module name; rename the file" in message
    assert "importing the app raised" not in message


def test_loading_the_same_file_twice_gives_the_same_app() -> None:
    assert load_app(APPS / "shop.py") is load_app(str(APPS / "shop.py"))


# --- failing loudly --------------------------------------------------------------------------


def test_import_error_carries_its_traceback() -> None:
    error = load_error(APPS / "broken_import.py")
    assert "importing the app raised KeyError: 'missing_key'" in str(error)
    assert "Traceback (most recent call last)" in error.details
    assert "broken_import.py" in error.details
    assert 'SETTINGS = helper()["missing_key"]' in error.details


def test_a_missing_dependency_is_an_import_failure_with_traceback(tmp_path: Path) -> None:
    write(tmp_path, "needs_dep.py", "import no_such_dependency_xyz\n")
    error = load_error(tmp_path / "needs_dep.py")
    assert "ModuleNotFoundError" in str(error)
    assert "no_such_dependency_xyz" in error.details


def test_declaration_error_names_the_function_and_the_fix() -> None:
    error = load_error(APPS / "bad_declaration.py")
    assert "function 'create_order'" in str(error)
    assert "unknown setting 'memory' (did you mean 'memory_mb'?)" in str(error)
    # One line at the user's own line, with no traceback through the platform's frames.
    assert "bad_declaration.py:12: function 'create_order' (@app.function()): unknown setting" in str(error)
    assert error.details == ""


BAD_DECLARATIONS = {
    "pattern": (
        '@app.on_event({"type": [{"prefix": 5}]})',
        "function 'handler': invalid event pattern at type[0].prefix: prefix takes a string or"
        ' {"equals-ignore-case": "text"}, not a number',
    ),
    "cron": (
        '@app.schedule("cron(0 25 * * ? *)")',
        "function 'handler': invalid schedule: 'cron(0 25 * * ? *)': the hours field '25' has '25', which is not"
        " in 0-23",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_DECLARATIONS))
def test_check_and_dev_print_a_bad_declaration_as_one_line_at_the_users_line(tmp_path: Path, kind: str) -> None:
    decorator, said = BAD_DECLARATIONS[kind]
    source = (
        f"import triggerfish\n\napp = triggerfish.App('bad')\n\n\n{decorator}\ndef handler(event, context):\n    pass\n"
    )
    (tmp_path / "app.py").write_text(source)
    for verb in (["check", "app.py"], ["dev", "app.py", "--port", "0", "--no-reload"]):
        done = subprocess.run(
            [sys.executable, "-m", "triggerfish", *verb], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2
        assert done.stderr == f"error: app.py:6: {said}\n"


def test_no_app_lists_what_the_module_defines() -> None:
    error = load_error(APPS / "no_app.py")
    assert "no triggerfish.App in module no_app" in str(error)
    assert "handler" in str(error)
    assert "TABLE" in str(error)


def test_two_apps_without_attr_lists_them() -> None:
    error = load_error(APPS / "two_apps.py")
    assert "several Apps" in str(error)
    assert "public ('public')" in str(error)
    assert "admin ('admin')" in str(error)
    assert ":NAME" in str(error)


def test_an_app_with_no_functions_is_refused() -> None:
    assert "declares no functions" in str(load_error(APPS / "empty_app.py"))


def test_sys_exit_at_import_is_reported_not_obeyed() -> None:
    error = load_error(APPS / "exits.py")
    assert "SystemExit: configuration missing" in str(error)


def test_missing_attr_and_wrong_type(tmp_path: Path) -> None:
    assert "has no attribute 'nope' (Apps in it: app)" in str(load_error(f"{APPS / 'shop.py'}:nope"))
    assert "is a str, not a triggerfish.App" in str(load_error(f"{APPS / 'shop.py'}:__name__"))


def test_missing_file_and_missing_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert "no such file" in str(load_error(tmp_path / "nothing.py"))
    monkeypatch.chdir(tmp_path)
    error = load_error("no_such_pkg.api:app")
    assert "no module named 'no_such_pkg'" in str(error)
    assert "not a module name" in str(load_error("not a module!"))


def test_a_stacked_decorator_conflict_fails_at_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        "warm_app.py",
        """
        import triggerfish

        app = triggerfish.App("warm")

        @app.function(min_warm=11)
        def handler(event):
            return event
        """,
    )
    error = load_error(tmp_path / "warm_app.py")
    assert "function 'handler': min_warm (11) cannot exceed concurrency (10)" in str(error)


def test_the_cli_process_sees_the_error_not_a_crash(tmp_path: Path) -> None:
    # A real process: loading a broken app must not kill the interpreter that asked.
    script = (
        "import sys\n"
        "from triggerfish.loader import load_app\n"
        "from triggerfish.errors import AppLoadError\n"
        "try:\n"
        f"    load_app({str(APPS / 'exits.py')!r})\n"
        "except AppLoadError as exc:\n"
        "    print('caught:', exc)\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "caught:" in done.stdout
    assert "still running" in done.stdout


# --- describing and serialising --------------------------------------------------------------


def test_describe_functions_shows_every_function_and_trigger() -> None:
    text = describe_functions(load_app(APPS / "shop.py").functions)
    lines = text.splitlines()
    assert lines[0].split() == ["FUNCTION", "MEMORY", "TIMEOUT", "CONCURRENCY", "TRIGGERS"]
    assert any(line.startswith("create_order") and "http POST /orders" in line for line in lines)
    assert any("queue orders (batch 10, window 0s)" in line for line in lines)
    assert any(
        line.startswith("on_order_created") and 'event default {"type":["order.created"]}' in line for line in lines
    )
    assert any(line.startswith("hourly") and "schedule rate(1 hour)" in line for line in lines)
    assert any(line.startswith("echo") and "(invoke only)" in line for line in lines)
    assert describe_functions({}) == "no functions"


def test_spec_round_trips_through_json() -> None:
    app = App("full")

    auth = hmac_auth(secret_env="A", scheme="stripe")

    @app.http("GET", "/x/{proxy+}", auth=auth, on_failure="queue:failed", env={"A": "1"})
    @app.on_event({"source": ["s"]}, bus="b", shape="eventbridge")
    @app.on_queue("q", batch_size=20, batch_window=1.5)
    @app.on_topic("t", filter={"k": ["v"]})
    @app.schedule("cron(0 3 * * ? *)", tz="UTC")
    @app.on_object("bucket", events=("deleted",), prefix="a/", suffix=".b")
    @app.on_change("table", ops=("remove",))
    def everything(event: Any, context: Any) -> Any:
        return event

    spec = app.functions["everything"]
    data = orjson.loads(orjson.dumps(spec_to_dict(spec)))
    restored = spec_from_dict(data)
    assert restored.name == spec.name
    assert restored.ref == spec.ref
    assert restored.settings == spec.settings
    assert restored.triggers == spec.triggers
    assert data["triggers"][0]["auth"]["scheme"] == "stripe"
    with pytest.raises(InvocationError, match="runs in the app's workers"):
        restored.handler({}, None)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"name": "x", "ref": "m:f"},
        {"name": "x", "ref": "m:f", "settings": {"memory_mb": "lots"}},
        {
            "name": "x",
            "ref": "m:f",
            "settings": spec_to_dict(load_app(APPS / "shop.py").functions["add"])["settings"],
            "triggers": [{"kind": "carrier-pigeon"}],
        },
    ],
)
def test_spec_from_dict_rejects_what_is_not_a_description(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a function description"):
        spec_from_dict(bad)


def test_object_and_change_triggers_are_listed_as_not_live_yet() -> None:
    # Declared and checked, but nothing fires them until storage lands: a listing must not make them look live.
    app = App("storage")

    @app.on_object("uploads", prefix="images/")
    def thumbnail(event: dict[str, Any], context: Any) -> None: ...

    @app.on_change("orders")
    def audit(event: dict[str, Any], context: Any) -> None: ...

    text = describe_functions(app.functions)
    assert "object uploads created images/*" in text
    assert "(not live yet)" not in text  # objects fire too (docs/objects.md)
    # Table changes fire (docs/changes.md), and so does PostgreSQL change capture (docs/pg-changes.md).
    assert "change orders insert,modify,remove (batch 100)" in text
    assert "(not live yet)" not in text.split("change orders", 1)[1]

    @app.on_change("env:ORDERS_DB", table="public.orders")
    def capture(event: dict[str, Any], context: Any) -> None: ...

    described = describe_functions(app.functions)
    assert "change public.orders in env:ORDERS_DB insert,modify,remove (NEW_IMAGE)" in described
    assert "(not live yet)" not in described.split("change public.orders", 1)[1]
