"""Declaring functions with App's decorators: what they build, and every way a declaration is refused."""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import pytest

from triggerfish.app import App
from triggerfish.errors import DeclarationError
from triggerfish.model import (
    ChangeTrigger,
    Destination,
    EventTrigger,
    FunctionSettings,
    HttpTrigger,
    ObjectTrigger,
    QueueTrigger,
    ScheduleTrigger,
    TopicTrigger,
)


def handler(event: Any, context: Any) -> Any:
    return event


def declare_error(declare: Any) -> str:
    """Run a declaration that must fail; return its message."""
    with pytest.raises(DeclarationError) as caught:
        declare()
    return str(caught.value)


# --- what the decorators build ---------------------------------------------------------------


def test_each_decorator_registers_its_trigger_and_returns_the_function() -> None:
    app = App("shop")

    @app.http("post", "/orders/{id}", auth="api_key", memory_mb=256)
    def create_order(event: Any, context: Any) -> Any:
        return event

    @app.on_event({"source": ["shop"]}, bus="orders", shape="eventbridge")
    def audit(event: Any) -> None: ...

    @app.on_queue("orders", batch_size=25, batch_window=2)
    def drain(event: Any) -> None: ...

    @app.on_topic("alerts", filter={"level": ["high"]})
    def page(event: Any) -> None: ...

    @app.schedule("cron(0 3 * * ? *)", tz="Europe/Paris")
    def nightly(event: Any) -> None: ...

    @app.on_object("uploads", events=("created", "deleted"), prefix="in/", suffix=".csv")
    def ingest(event: Any) -> None: ...

    @app.on_change("orders", ops=("insert",))
    def changed(event: Any) -> None: ...

    @app.function(timeout=30)
    def direct(event: Any) -> None: ...

    @app.function
    def bare(event: Any) -> None: ...

    assert create_order({"x": 1}, None) == {"x": 1}, "the decorated function stays a plain function"
    specs = app.functions
    assert list(specs) == ["create_order", "audit", "drain", "page", "nightly", "ingest", "changed", "direct", "bare"]
    assert specs["create_order"].triggers == (HttpTrigger("POST", "/orders/{id}", "api_key"),)
    assert specs["create_order"].settings.memory_mb == 256
    assert specs["create_order"].handler is create_order
    assert (
        specs["create_order"].ref
        == f"{__name__}:test_each_decorator_registers_its_trigger_and_returns_the_function.<locals>.create_order"
    )
    assert specs["audit"].triggers == (EventTrigger({"source": ["shop"]}, "orders", "eventbridge"),)
    assert specs["drain"].triggers == (QueueTrigger("orders", 25, 2.0),)
    assert specs["page"].triggers == (TopicTrigger("alerts", {"level": ["high"]}),)
    assert specs["nightly"].triggers == (ScheduleTrigger("cron(0 3 * * ? *)", "Europe/Paris"),)
    assert specs["ingest"].triggers == (ObjectTrigger("uploads", ("created", "deleted"), "in/", ".csv"),)
    assert specs["changed"].triggers == (ChangeTrigger("orders", ("insert",)),)
    assert specs["direct"].triggers == ()
    assert specs["direct"].settings.timeout == 30.0
    assert specs["bare"].settings == FunctionSettings()


def test_stacked_decorators_give_one_function_several_triggers_in_written_order() -> None:
    app = App("shop")

    @app.http("POST", "/orders", timeout=10)
    @app.on_queue("orders", timeout=10, memory_mb=512)
    def create_order(event: Any, context: Any) -> None: ...

    spec = app.functions["create_order"]
    assert [t.kind for t in spec.triggers] == ["http", "queue"]
    assert (spec.settings.timeout, spec.settings.memory_mb) == (10.0, 512)


EVERY_SETTING: dict[str, Any] = {
    "memory_mb": 512,
    "timeout": 30,
    "concurrency": 4,
    "min_warm": 1,
    "retries": 0,
    "max_event_age": 600,
    "on_success": "queue:done",
    "on_failure": "function:alert",
    "dead_letter": "topic:dead",
    "env": {"TABLE": "orders"},
    "secrets": ["STRIPE_KEY"],
    "ephemeral_storage": 2048,
    "keep_inputs": False,
}
DECORATORS: dict[str, Any] = {
    "function": lambda app, s: app.function(**s),
    "http": lambda app, s: app.http("GET", "/orders", **s),
    "on_event": lambda app, s: app.on_event({"source": ["shop"]}, **s),
    "on_queue": lambda app, s: app.on_queue("orders", **s),
    "on_topic": lambda app, s: app.on_topic("alerts", **s),
    "schedule": lambda app, s: app.schedule("rate(5 minutes)", **s),
    "on_object": lambda app, s: app.on_object("uploads", **s),
    "on_change": lambda app, s: app.on_change("orders", **s),
}


def test_every_setting_is_covered_by_the_table_below() -> None:
    assert set(EVERY_SETTING) == {f.name for f in dataclasses.fields(FunctionSettings)}


@pytest.mark.parametrize("decorator", list(DECORATORS))
def test_every_decorator_accepts_every_setting(decorator: str) -> None:
    app = App("shop")
    DECORATORS[decorator](app, EVERY_SETTING)(handler)
    assert app.functions["handler"].settings == FunctionSettings(
        memory_mb=512,
        timeout=30.0,
        concurrency=4,
        min_warm=1,
        retries=0,
        max_event_age=600.0,
        on_success=Destination("queue", "done"),
        on_failure=Destination("function", "alert"),
        dead_letter=Destination("topic", "dead"),
        env={"TABLE": "orders"},
        secrets=("STRIPE_KEY",),
        ephemeral_storage=2048,
        keep_inputs=False,
    )


def test_settings_are_normalised() -> None:
    app = App("shop")
    app.function(
        on_success="function:notify", on_failure="queue:failed", dead_letter="topic:dlq", env={"TABLE": "orders"}
    )(handler)
    settings = app.functions["handler"].settings
    assert settings.on_success == Destination("function", "notify")
    assert settings.on_failure == Destination("queue", "failed")
    assert settings.dead_letter == Destination("topic", "dlq")
    assert str(settings.on_failure) == "queue:failed"
    assert settings.env == {"TABLE": "orders"}


def test_name_overrides_the_python_name_and_partials_need_one() -> None:
    app = App("shop")
    app.function(name="create-order")(handler)
    partial = functools.partial(lambda prefix, event: prefix + event, "x")
    message = declare_error(lambda: app.function(partial))
    assert "pass name=" in message
    app.function(name="prefixed")(partial)
    assert list(app.functions) == ["create-order", "prefixed"]


def test_one_argument_async_and_callable_object_handlers_are_accepted() -> None:
    app = App("shop")

    async def async_handler(event: Any, context: Any) -> None: ...

    class Callable:
        def __call__(self, event: Any) -> None: ...

    app.function(async_handler)
    app.function(name="obj")(Callable())
    app.function(name="one")(lambda event: None)
    assert list(app.functions) == ["async_handler", "obj", "one"]


def test_routes_that_differ_only_in_parameter_names_are_distinct_shapes_of_one_route() -> None:
    app = App("shop")
    app.http("GET", "/orders/{id}", name="get_order")(handler)
    app.http("DELETE", "/orders/{id}", name="delete_order")(handler)
    app.http("GET", "/orders/{id}/items/{proxy+}", name="items")(handler)
    app.http("GET", "/", name="root")(handler)
    message = declare_error(lambda: app.http("GET", "/orders/{order_id}", name="other")(handler))
    assert "'get_order'" in message
    assert "'other'" in message


def test_any_conflicts_with_every_method_and_back() -> None:
    app = App("shop")
    app.http("POST", "/pay", name="pay")(handler)
    message = declare_error(lambda: app.http("ANY", "/pay", name="catch_all")(handler))
    assert "'pay'" in message
    assert "'catch_all'" in message
    app.http("ANY", "/other", name="other")(handler)
    assert "'other'" in declare_error(lambda: app.http("GET", "/other", name="get_other")(handler))


# --- refused declarations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"memory": 256}, "unknown setting 'memory' (did you mean 'memory_mb'?)"),
        ({"timout": 5}, "did you mean 'timeout'?"),
        ({"batchsize": 5}, "did you mean 'batch_size'?"),
        ({"memory_mb": 64}, "memory_mb must be from 128 to 10240"),
        ({"memory_mb": 20000}, "memory_mb must be from 128 to 10240"),
        ({"memory_mb": "256"}, "memory_mb must be a whole number"),
        ({"memory_mb": True}, "memory_mb must be a whole number"),
        ({"timeout": 0}, "timeout must be more than 0"),
        ({"timeout": 901}, "at most 900"),
        ({"timeout": float("nan")}, "timeout must be a number of seconds"),
        ({"concurrency": 0}, "concurrency must be"),
        ({"min_warm": -1}, "min_warm must be"),
        ({"retries": 186}, "retries must be from 0 to 185"),
        ({"max_event_age": 59}, "max_event_age must be from 60 to 21600"),
        ({"max_event_age": 21601}, "max_event_age must be from 60 to 21600"),
        ({"on_failure": "sqs:x"}, "unknown destination kind 'sqs'"),
        ({"on_success": "notify"}, "a destination is written"),
        ({"dead_letter": "queue:"}, "invalid queue name"),
        ({"env": {"1BAD": "x"}}, "not a valid variable name"),
        ({"env": {"AWS_LAMBDA_FUNCTION_NAME": "x"}}, "set by the runtime"),
        ({"env": {"TRIGGERFISH_STORE": "x"}}, "set by the runtime"),
        ({"env": {"_HANDLER": "x"}}, "set by the runtime"),
        ({"env": {"PORT": 8080}}, "must be a string"),
        ({"env": {"X": "a\x00b"}}, "NUL"),
        ({"env": ["X=1"]}, "env must be a table"),
    ],
)
def test_bad_settings_name_the_function_and_the_fix(settings: dict[str, Any], expected: str) -> None:
    app = App("shop")
    message = declare_error(lambda: app.on_queue("orders", **settings)(handler))
    assert "'handler'" in message
    assert expected in message


def test_min_warm_cannot_exceed_concurrency_even_across_stacked_decorators() -> None:
    app = App("shop")
    app.function(min_warm=5)(handler)
    app.http("GET", "/", concurrency=1)(handler)
    with pytest.raises(DeclarationError, match=re.escape("min_warm (5) cannot exceed concurrency (1)")):
        _ = app.functions
    ok = App("shop")
    ok.function(min_warm=20)(handler)
    ok.http("GET", "/", concurrency=30)(handler)  # the two halves on different decorators
    assert ok.functions["handler"].settings.min_warm == 20


def test_a_setting_given_twice_with_different_values() -> None:
    app = App("shop")
    app.on_queue("orders", timeout=5)(handler)
    message = declare_error(lambda: app.http("GET", "/", timeout=6)(handler))
    assert "timeout is set twice with different values (5.0 and 6.0)" in message


def test_two_python_functions_with_one_name() -> None:
    app = App("shop")
    app.function(handler)

    def other(event: Any) -> None: ...

    message = declare_error(lambda: app.function(name="handler")(other))
    assert "two functions are named 'handler'" in message
    assert "test_app:handler" in message


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("FETCH", "/x", "unknown HTTP method 'FETCH'"),
        (None, "/x", "unknown HTTP method None"),
        ("GET", "orders", "starts with '/'"),
        ("GET", "", "starts with '/'"),
        ("GET", "/orders/", "empty segment"),
        ("GET", "//orders", "empty segment"),
        ("GET", "/orders/{id", "a parameter is a whole segment"),
        ("GET", "/orders/x{id}", "a parameter is a whole segment"),
        ("GET", "/orders/{1id}", "a parameter is a whole segment"),
        ("GET", "/orders/{id}/{id}", "appears twice"),
        ("GET", "/{proxy+}/tail", "must be the last segment"),
        ("GET", "/orders list", "cannot hold unescaped"),
        ("GET", "/a?b=1", "cannot hold unescaped"),
        ("GET", "/%2e%2e", "cannot hold unescaped"),
        ("GET", "/-/health", "reserved for the platform"),
        ("POST", "/-", "reserved for the platform"),
    ],
)
def test_bad_http_routes(method: Any, path: str, expected: str) -> None:
    message = declare_error(lambda: App("shop").http(method, path)(handler))
    assert "'handler'" in message
    assert expected in message


def test_bad_http_auth() -> None:
    assert "auth must be" in declare_error(lambda: App("shop").http("GET", "/", auth=42)(handler))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"batch_size": 0}, "batch_size must be from 1 to 10000"),
        ({"batch_size": 10001, "batch_window": 5}, "batch_size must be from 1 to 10000"),
        ({"batch_size": 11}, "needs batch_window of at least 1 second"),
        ({"batch_window": -1}, "batch_window must be from 0 to 300"),
        ({"batch_window": 301}, "batch_window must be from 0 to 300"),
    ],
)
def test_bad_queue_batches(kwargs: dict[str, Any], expected: str) -> None:
    assert expected in declare_error(lambda: App("shop").on_queue("orders", **kwargs)(handler))


def test_queue_batches_at_the_limits_are_accepted() -> None:
    app = App("shop")
    app.on_queue("a", batch_size=10, name="ten")(handler)
    app.on_queue("b", batch_size=10000, batch_window=300, name="most")(handler)
    assert app.functions["most"].triggers == (QueueTrigger("b", 10000, 300.0),)


@pytest.mark.parametrize("name", ["", "-leading", "has space", "x" * 256, "a\x00b", 42])
def test_bad_resource_names(name: Any) -> None:
    for declare in (
        lambda: App("shop").on_queue(name)(handler),
        lambda: App("shop").on_topic(name)(handler),
        lambda: App("shop").on_object(name)(handler),
        lambda: App("shop").on_change(name)(handler),
        lambda: App("shop").on_event({"source": ["x"]}, bus=name)(handler),
    ):
        assert "name" in declare_error(declare)


def test_bad_schedules_name_the_function_and_the_reason() -> None:
    message = declare_error(lambda: App("shop").schedule("cron(0 3 * * * *)")(handler))
    assert "function 'handler': invalid schedule" in message
    assert "must be '?'" in message
    assert "unknown time zone" in declare_error(lambda: App("shop").schedule("rate(1 hour)", tz="Mars/Base")(handler))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"events": ("created", "renamed")}, "unknown events entry 'renamed'"),
        ({"events": ()}, "events is empty"),
        ({"events": ("created", "created")}, "lists an entry twice"),
        ({"prefix": 5}, "prefix must be a string"),
        ({"suffix": "x" * 2000}, "suffix must be a string of at most 1024"),
    ],
)
def test_bad_object_triggers(kwargs: dict[str, Any], expected: str) -> None:
    assert expected in declare_error(lambda: App("shop").on_object("uploads", **kwargs)(handler))


def test_bad_change_ops() -> None:
    assert "unknown ops entry 'update'" in declare_error(lambda: App("shop").on_change("t", ops=("update",))(handler))
    assert App("shop").on_change("t", ops="insert")(handler) is handler  # one op written as a string


@pytest.mark.parametrize("pattern", [{}, [], "source", None])
def test_event_pattern_must_be_a_non_empty_dict(pattern: Any) -> None:
    assert "must be a non-empty dict" in declare_error(lambda: App("shop").on_event(pattern)(handler))


def test_invalid_event_pattern_gives_the_engines_reason() -> None:
    pytest.importorskip("triggerfish.events.patterns")
    message = declare_error(lambda: App("shop").on_event({"source": "not-a-list"})(handler))
    assert "function 'handler': invalid event pattern at source: a value to match must be in an array" in message
    message = declare_error(lambda: App("shop").on_topic("alerts", filter={"level": [{"nope": 1}]})(handler))
    assert "invalid event filter" in message


def test_bad_event_shape() -> None:
    assert "shape must be" in declare_error(lambda: App("shop").on_event({"a": ["b"]}, shape="sqs")(handler))


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (lambda: None, "cannot take (event) or (event, context)"),
        (lambda a, b, c: None, "cannot take (event) or (event, context)"),
    ],
)
def test_handlers_that_cannot_take_an_event(bad: Any, expected: str) -> None:
    assert expected in declare_error(lambda: App("shop").function(name="bad")(bad))


def test_generator_handlers_are_refused() -> None:
    def gen(event: Any) -> Any:
        yield event

    assert "generator" in declare_error(lambda: App("shop").function(gen))


def test_not_callable_handler() -> None:
    assert "not callable" in declare_error(lambda: App("shop").function(name="x")(42))  # type: ignore[type-var]
    # Without name=, a non-callable is still reported as one, not as a missing __name__.
    assert "not callable" in declare_error(lambda: App("shop").function()(42))  # type: ignore[type-var]


def test_decorators_used_without_their_arguments() -> None:
    app = App("shop")
    assert 'e.g. @app.on_queue("orders")' in declare_error(lambda: app.on_queue(handler))  # type: ignore[arg-type]
    assert "@app.schedule" in declare_error(lambda: app.schedule(handler))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "-x", "x" * 65, None])
def test_bad_app_names(name: Any) -> None:
    assert "invalid app name" in declare_error(lambda: App(name))


@pytest.mark.parametrize("name", ["1st", "has space", "a.b", ""])
def test_bad_function_names(name: str) -> None:
    assert "invalid function name" in declare_error(lambda: App("shop").function(name=name)(handler))
