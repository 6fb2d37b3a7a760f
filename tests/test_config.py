"""triggerfish.toml and [tool.triggerfish]: the format, the precedence of layers, and precise errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from triggerfish.app import App
from triggerfish.config import ProjectConfig, load_config, parse_override, resolve_functions
from triggerfish.errors import DeclarationError
from triggerfish.model import Destination


def make_app() -> App:
    app = App("shop")

    @app.function(memory_mb=256, timeout=5, env={"FROM": "decorator", "KEEP": "yes"})
    def create_order(event: Any) -> Any:
        return event

    @app.function()
    def refund(event: Any) -> Any:
        return event

    return app


def write(directory: Path, text: str, name: str = "triggerfish.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(directory: Path) -> str:
    with pytest.raises(DeclarationError) as caught:
        load_config(directory)
    return str(caught.value)


FULL = """
    name = "shop"
    app = "app.py:app"

    [functions."*"]
    timeout = 10
    concurrency = 4

    [functions.create_order]
    memory_mb = 512
    on_failure = "queue:failed"
    env = { FROM = "file" }

    [stages.prod.functions."*"]
    concurrency = 50

    [stages.prod.functions.create_order]
    memory_mb = 1024
    env = { STAGE = "prod" }

    [stages.prod.queues.orders]
    visibility_timeout = 120

    [queues.orders]
    visibility_timeout = 60
    max_receives = 5
    dead_letter = "orders-dlq"

    [topics.alerts]
    fifo = true
"""


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config == ProjectConfig()
    specs = resolve_functions(make_app(), config)
    assert specs["create_order"].settings.memory_mb == 256


def test_file_is_parsed_into_tables(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL).parent)
    assert config.path == tmp_path / "triggerfish.toml"
    assert config.name == "shop"
    assert config.app == "app.py:app"
    assert config.functions["*"] == {"timeout": 10.0, "concurrency": 4}
    assert config.functions["create_order"]["on_failure"] == Destination("queue", "failed")
    assert config.queues == {"orders": {"visibility_timeout": 60, "max_receives": 5, "dead_letter": "orders-dlq"}}
    assert config.topics == {"alerts": {"fifo": True}}
    assert config.queue_settings("prod")["orders"]["visibility_timeout"] == 120
    assert config.queue_settings()["orders"]["visibility_timeout"] == 60


def test_precedence_decorator_file_stage_override(tmp_path: Path) -> None:
    app = make_app()
    config = load_config(write(tmp_path, FULL).parent)

    base = resolve_functions(app, config)["create_order"].settings
    assert (base.memory_mb, base.timeout, base.concurrency) == (512, 10.0, 4)  # file beats decorator
    assert base.env == {"FROM": "file", "KEEP": "yes"}  # env merges key by key

    prod = resolve_functions(app, config, stage="prod")["create_order"].settings
    assert (prod.memory_mb, prod.timeout, prod.concurrency) == (1024, 10.0, 50)  # stage beats file
    assert prod.env == {"FROM": "file", "KEEP": "yes", "STAGE": "prod"}

    overrides = {"*": {"timeout": 30}, "create_order": {"memory_mb": 2048, "timeout": 60}}
    flagged = resolve_functions(app, config, stage="prod", overrides=overrides)
    assert (flagged["create_order"].settings.memory_mb, flagged["create_order"].settings.timeout) == (2048, 60.0)
    assert flagged["refund"].settings.timeout == 30.0  # "*" reaches every function
    assert flagged["refund"].settings.concurrency == 50
    assert flagged["create_order"].handler is app.functions["create_order"].handler


def test_unchanged_specs_are_returned_as_they_were(tmp_path: Path) -> None:
    app = make_app()
    assert resolve_functions(app, ProjectConfig())["refund"] is app.functions["refund"]


def test_pyproject_tool_table(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        [project]
        name = "shop"

        [tool.triggerfish.functions.refund]
        retries = 0
        """,
        "pyproject.toml",
    )
    config = load_config(tmp_path)
    assert config.functions == {"refund": {"retries": 0}}
    assert resolve_functions(make_app(), config)["refund"].settings.retries == 0


def test_pyproject_without_the_table_is_empty(tmp_path: Path) -> None:
    write(tmp_path, '[project]\nname = "shop"\n', "pyproject.toml")
    assert load_config(tmp_path) == ProjectConfig()


def test_both_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "[functions.refund]\nretries = 1\n")
    write(tmp_path, "[tool.triggerfish.functions.refund]\nretries = 0\n", "pyproject.toml")
    assert "keep one of them" in config_error(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[functions.refund\nretries = 1", "not valid TOML"),
        ("[fuctions.refund]\nretries = 1", "unknown key 'fuctions' (did you mean 'functions'?)"),
        ("app = 5", "app must be a string"),
        ('name = "my shop"', "name: invalid app name 'my shop': use 1 to 64 letters, digits, _ or -"),
        ("name = 7", "name: invalid app name 7"),
        (
            "[functions.refund]\nmemory = 256",
            "[functions.refund]: memory: unknown setting 'memory' (did you mean 'memory_mb'?)",
        ),
        ("[functions.refund]\nmemory_mb = 99999", "[functions.refund]: memory_mb: memory_mb must be from 128 to 10240"),
        ('[functions.refund]\ntimeout = "5s"', "timeout must be a number of seconds"),
        (
            '[functions."*"]\nenv = { AWS_LAMBDA_X = "1" }',
            '[functions."*"]: env: env: AWS_LAMBDA_X is set by the runtime',
        ),
        ('[functions.refund]\non_failure = "email:me"', "unknown destination kind 'email'"),
        ("functions = 3", "[functions]: must be a table of tables"),
        ("[functions]\nrefund = 3", "[functions.refund]: must be a table"),
        ("[stages.prod]\nfunction = {}", "[stages.prod]: unknown key 'function' (did you mean 'functions'?)"),
        ("[stages.prod.functions.refund]\nretries = -1", "[stages.prod.functions.refund]: retries"),
        (
            "[queues.orders]\nvisibility = 30",
            "[queues.orders]: unknown key 'visibility' (did you mean 'visibility_timeout'?)",
        ),
        ('[queues.orders]\nfifo = "yes"', "fifo must be true or false"),
        ("[queues.orders]\nmax_receives = true", "max_receives must be a whole number"),
        ("[queues.orders]\nretention = 0", "retention must be more than 0"),
        ('[queues."bad name"]\nfifo = true', "invalid queue name"),
        ("[topics.alerts]\nvisibility_timeout = -5", "[topics.alerts]: visibility_timeout must be more than 0"),
    ],
)
def test_errors_name_the_file_the_table_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, text)
    message = config_error(tmp_path)
    assert str(tmp_path / "triggerfish.toml") in message
    assert expected in message


def test_errors_in_pyproject_name_the_tool_table(tmp_path: Path) -> None:
    write(tmp_path, "[tool.triggerfish.functions.refund]\nretrys = 1\n", "pyproject.toml")
    message = config_error(tmp_path)
    assert "pyproject.toml: [tool.triggerfish.functions.refund]: retrys" in message
    assert "did you mean 'retries'?" in message


def test_binary_garbage_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_bytes(b"\xff\xfe\x00garbage")
    assert "triggerfish.toml" in config_error(tmp_path)


def test_sections_for_functions_the_app_does_not_declare(tmp_path: Path) -> None:
    write(tmp_path, "[functions.create_ordr]\nretries = 1\n")
    with pytest.raises(DeclarationError) as caught:
        resolve_functions(make_app(), load_config(tmp_path))
    message = str(caught.value)
    assert "[functions.create_ordr]" in message
    assert "did you mean 'create_order'?" in message
    assert "the app declares create_order, refund" in message


def test_unknown_stage(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL).parent)
    with pytest.raises(DeclarationError, match=r"unknown stage 'staging' \(stages: prod\)"):
        resolve_functions(make_app(), config, stage="staging")


def test_layers_are_checked_as_a_whole(tmp_path: Path) -> None:
    write(tmp_path, "[functions.refund]\nmin_warm = 20\n")
    with pytest.raises(DeclarationError, match=r"min_warm \(20\) cannot exceed concurrency \(10\)") as caught:
        resolve_functions(make_app(), load_config(tmp_path))
    assert "[functions.refund]" in str(caught.value)
    write(tmp_path, "[functions.refund]\nmin_warm = 20\nconcurrency = 20\n")
    assert resolve_functions(make_app(), load_config(tmp_path))["refund"].settings.min_warm == 20


def test_bad_overrides() -> None:
    app = make_app()
    with pytest.raises(DeclarationError, match="override for refund: memory_mb"):
        resolve_functions(app, ProjectConfig(), overrides={"refund": {"memory_mb": 1}})
    with pytest.raises(DeclarationError, match="did you mean 'refund'"):
        resolve_functions(app, ProjectConfig(), overrides={"refnd": {"retries": 1}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("create_order.memory_mb=256", ("create_order", "memory_mb", 256)),
        ("*.timeout=2.5", ("*", "timeout", 2.5)),
        ("refund.on_failure=queue:failed", ("refund", "on_failure", Destination("queue", "failed"))),
        ('refund.on_failure="bus:default"', ("refund", "on_failure", Destination("bus", "default"))),
        ('refund.env={A = "1"}', ("refund", "env", {"A": "1"})),
    ],
)
def test_parse_override(text: str, expected: tuple[str, str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("memory_mb=256", "write FUNCTION.SETTING=VALUE"),
        ("create_order.memory_mb", "write FUNCTION.SETTING=VALUE"),
        ("create_order.memry=1", "did you mean 'memory_mb'?"),
        ("create_order.memory_mb=lots", "memory_mb must be a whole number"),
    ],
)
def test_bad_override_text(text: str, expected: str) -> None:
    with pytest.raises(DeclarationError, match="override") as caught:
        parse_override(text)
    assert expected in str(caught.value)


def test_bus_tables_set_the_archive_and_are_checked(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text(
        "[buses.default]\narchive_retention = 3600\n\n[stages.prod.buses.default]\narchive_max_bytes = 1000\n"
    )
    config = load_config(tmp_path)
    assert config.bus_settings() == {"default": {"archive_retention": 3600}}
    assert config.bus_settings("prod") == {"default": {"archive_retention": 3600, "archive_max_bytes": 1000}}
    (tmp_path / "triggerfish.toml").write_text("[buses.default]\nretention = 3600\n")
    with pytest.raises(DeclarationError, match=r"buses.default.*unknown key 'retention'.*archive_retention"):
        load_config(tmp_path)
    (tmp_path / "triggerfish.toml").write_text('[buses."bad name"]\narchive_retention = 1\n')
    with pytest.raises(DeclarationError, match="invalid bus name"):
        load_config(tmp_path)
