"""MQTT settings checked before anything connects: broker URLs, filters, share groups, `@app.on_mqtt`, `[mqtt]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from triggerfish.app import App
from triggerfish.config import load_config
from triggerfish.errors import DeclarationError
from triggerfish.loader import describe_trigger, spec_from_dict, spec_to_dict
from triggerfish.model import MqttTrigger, StreamSettings
from triggerfish.sources.mqtt_config import (
    BrokerURL,
    check_share_group,
    check_topic_filter,
    parse_broker_url,
    subscription_filter,
    topic_matches,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerURL("127.0.0.1", 1883)),
        ("mqtt://broker:1884", BrokerURL("broker", 1884)),
        ("mqtts://broker", BrokerURL("broker", 8883, tls=True)),
        ("mqtt://dev%40home:p%3Ass@b:1883?version=5", BrokerURL("b", 1883, False, "dev@home", "p:ss", "5")),
        ("mqtt://b/", BrokerURL("b", 1883)),
    ],
)
def test_broker_urls_name_host_port_credentials_and_version(url: str, expected: BrokerURL) -> None:
    parsed = parse_broker_url(url)
    assert parsed == expected
    assert parsed.password == expected.password


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must be a URL such as mqtt://127.0.0.1:1883"),
        (1883, "must be a URL"),
        ("http://broker:1883", "has scheme 'http'; use mqtt:// (TCP) or mqtts:// (TLS)"),
        ("broker:1883", "use mqtt://"),
        ("mqtt://:1883", "names no host"),
        ("mqtt://broker:99999", "cannot be read"),
        ("mqtt://broker/topic", "has a path ('/topic')"),
        ("mqtt://broker?version=4", "version must be 3.1.1 or 5, not '4'"),
        ("mqtt://broker?qos=1", "unknown option 'qos'"),
        ("mqtt://broker#x", "has a fragment"),
    ],
)
def test_a_bad_broker_url_says_what_is_wrong_and_how_to_write_it(url: object, message: str) -> None:
    with pytest.raises(ValueError, match="the MQTT broker URL") as caught:
        parse_broker_url(url)
    assert message in str(caught.value)


def test_a_password_never_appears_in_an_error_or_the_url_shown() -> None:
    with pytest.raises(ValueError, match="scheme 'http'") as caught:
        parse_broker_url("http://user:hunter2@broker")
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in str(parse_broker_url("mqtt://user:hunter2@broker"))
    assert "hunter2" not in repr(parse_broker_url("mqtt://user:hunter2@broker"))


@pytest.mark.parametrize("topic", ["home/+/temperature", "#", "+", "home/#", "a//b", "/leading", "$SYS/#", "ü/+"])
def test_valid_topic_filters_pass(topic: str) -> None:
    assert check_topic_filter(topic) == topic


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "non-empty string"),
        (None, "non-empty string"),
        ("home/#/x", "'#' must be a whole level and the last one (level 2 is '#')"),
        ("home#", "'#' must be a whole level"),
        ("home/te+mp", "'+' must be a whole level (level 2 is 'te+mp')"),
        ("a\x00b", "NUL"),
        ("$share/g/home/#", "pass the group as share="),
        ("x" * 65_536, "longer than MQTT's 65,535 bytes"),
        ("\ud800", "not valid UTF-8"),
    ],
)
def test_a_bad_topic_filter_says_which_level_is_wrong(topic: object, message: str) -> None:
    with pytest.raises(ValueError, match="MQTT topic filter") as caught:
        check_topic_filter(topic)
    assert message in str(caught.value)


def test_share_groups() -> None:
    assert check_share_group("workers") == "workers"
    for bad in ("", "a/b", "a+", "#", 3, "x" * 129):
        with pytest.raises(ValueError, match="share must be a group name"):
            check_share_group(bad)
    assert subscription_filter("home/#", "workers") == "$share/workers/home/#"
    assert subscription_filter("home/#", None) == "home/#"


def handler(event: object, context: object) -> None:
    return None


def test_on_mqtt_declares_a_trigger_with_lambdas_stream_defaults() -> None:
    app = App("home")
    app.on_mqtt("home/+/temperature")(handler)
    trigger = app.functions["handler"].triggers[0]
    assert trigger == MqttTrigger("home/+/temperature", 1, "home.handler", StreamSettings())
    assert StreamSettings() == StreamSettings(100, 0.0, -1, -1.0, False, False, 1), "Lambda's defaults"
    assert describe_trigger(trigger) == "mqtt home/+/temperature (qos 1, batch 100) shared by home.handler"
    spec = app.functions["handler"]
    assert spec_from_dict(spec_to_dict(spec)).triggers == spec.triggers


def test_on_mqtt_takes_every_stream_setting() -> None:
    app = App("home")
    app.on_mqtt(
        "home/#", qos=0, share=False, batch_size=10_000, batch_window=300, max_retries=0, max_record_age=60,
        bisect_on_error=True, report_batch_item_failures=True, parallelization=10, on_failure="queue:bad",
    )(handler)  # fmt: skip
    spec = app.functions["handler"]
    assert spec.triggers[0] == MqttTrigger("home/#", 0, None, StreamSettings(10_000, 300.0, 0, 60.0, True, True, 10))
    assert str(spec.settings.on_failure) == "queue:bad"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"topic": "home/#/x"}, "'#' must be a whole level"),
        ({"qos": 2}, "qos must be 0 or 1, not 2: QoS 1 messages are acknowledged once stored"),
        ({"qos": True}, "qos must be 0 or 1"),
        ({"share": "a/b"}, "share must be a group name"),
        ({"batch_size": 0}, "batch_size must be a whole number from 1 to 10,000, not 0"),
        ({"batch_size": 10_001}, "batch_size must be a whole number from 1 to 10,000"),
        ({"batch_window": 301}, "batch_window must be from 0 to 300 seconds"),
        ({"max_retries": -2}, "max_retries must be a whole number from 0 to 10,000 (or -1), not -2"),
        ({"max_record_age": 30}, "max_record_age must be -1 (no limit) or from 60 to 604,800 seconds"),
        ({"bisect_on_error": "yes"}, "bisect_on_error must be True or False"),
        ({"parallelization": 11}, "parallelization must be a whole number from 1 to 10, not 11"),
        ({"batch_sise": 3}, "unknown setting 'batch_sise'"),
    ],
)
def test_on_mqtt_refuses_bad_arguments_naming_the_function_and_the_fix(options: dict[str, Any], message: str) -> None:
    app = App("home")
    topic = options.pop("topic", "home/#")
    with pytest.raises(DeclarationError) as caught:
        app.on_mqtt(topic, **options)(handler)
    assert "'handler'" in str(caught.value)
    assert message in str(caught.value)


def test_on_mqtt_needs_its_arguments() -> None:
    with pytest.raises(DeclarationError, match="needs its arguments"):
        App("home").on_mqtt(handler)  # type: ignore[arg-type]


def test_the_mqtt_table_of_triggerfish_toml(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text('[mqtt]\nurl = "mqtt://broker:1884"\nclient_id = "home-1"\n')
    assert load_config(tmp_path).mqtt == {"url": "mqtt://broker:1884", "client_id": "home-1"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "http://broker"', "[mqtt]: url 'http://broker' has scheme 'http'"),
        ("url = 1883", "[mqtt]: url must be a non-empty string"),
        ('client = "x"', "[mqtt]: unknown key 'client'"),
        ('client_id = "a b"', "client_id may hold letters, digits"),
    ],
)
def test_a_bad_mqtt_table_names_the_file_table_and_key(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "triggerfish.toml").write_text(f"[mqtt]\n{table}\n")
    with pytest.raises(DeclarationError) as caught:
        load_config(tmp_path)
    assert "triggerfish.toml" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("home/+/t", "home/kitchen/t", True),
        ("home/+/t", "home/kitchen/h", False),
        ("home/+/t", "home/t", False),
        ("home/#", "home", True),
        ("home/#", "home/a/b/c", True),
        ("home/#", "house/a", False),
        ("#", "anything/at/all", True),
        ("#", "$SYS/broker", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("+", "a", True),
        ("+/+", "/x", True),
    ],
)
def test_topic_matching_follows_mqtt(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_filters_are_event_patterns_checked_at_declaration() -> None:
    app = App("home")
    app.on_mqtt("home/#", filter={"data": {"celsius": [{"numeric": [">", 30]}]}})(handler)
    trigger = app.functions["handler"].triggers[0]
    assert isinstance(trigger, MqttTrigger)
    assert trigger.stream_settings.filters == ({"data": {"celsius": [{"numeric": [">", 30]}]}},)
    spec = app.functions["handler"]
    assert spec_from_dict(spec_to_dict(spec)).triggers == spec.triggers
    where = r"function 'handler': @app.on_mqtt\('home/#'\): "
    with pytest.raises(DeclarationError, match=where + "invalid event filter at data.celsius"):
        App("home").on_mqtt("home/#", filter={"data": {"celsius": [{"numeric": [">>", 30]}]}})(handler)
    with pytest.raises(DeclarationError, match="filter must be an event pattern or a list of 1 to 5 of them"):
        App("home").on_mqtt("home/#", filter=[{"topic": ["a"]}] * 6)(handler)
