"""The input transformer against AWS's documented examples, and its bad inputs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from triggerfish.bus.transform import InputTransformer, parse_path, resolve
from triggerfish.errors import InvalidInputError

# The EC2 state-change event of AWS's input transformer page.
EC2: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PATHS = {"instance": "$.detail.instance-id", "state": "$.detail.state"}

CASES: list[tuple[str, str, Any]] = [
    # (template, rendered text, the JSON value it parses to, or None when it is not JSON)
    (
        '"instance <instance> is in <state>"',
        '"instance i-0123456789 is in RUNNING"',
        "instance i-0123456789 is in RUNNING",
    ),
    (
        '{"instance" : <instance>, "state": [9, <state>, true], "Transformed" : "Yes"}',
        '{"instance" : "i-0123456789", "state": [9, "RUNNING", true], "Transformed" : "Yes"}',
        {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes"},
    ),
    (
        '{"instance" : "<instance>", "state": "<state>"}',
        '{"instance" : "i-0123456789", "state": "RUNNING"}',
        {"instance": "i-0123456789", "state": "RUNNING"},
    ),
    ("<instance> is in state <state>", '"i-0123456789" is in state "RUNNING"', None),
    (
        '{"ruleName" : <aws.events.rule-name>, "ruleArn": "<aws.events.rule-arn>"}',
        '{"ruleName" : "ec2-rule", "ruleArn": "arn:aws:events:us-east-1:123456789012:rule/ec2-rule"}',
        {"ruleName": "ec2-rule", "ruleArn": "arn:aws:events:us-east-1:123456789012:rule/ec2-rule"},
    ),
    ('{"at": <aws.events.event.ingestion-time>}', '{"at": "2015-11-11T21:29:55Z"}', {"at": "2015-11-11T21:29:55Z"}),
]


@pytest.mark.parametrize(("template", "text", "value"), CASES)
def test_aws_examples_render_as_documented(template: str, text: str, value: Any) -> None:
    rendered = InputTransformer(template, PATHS).render(
        EC2,
        rule_name="ec2-rule",
        rule_arn="arn:aws:events:us-east-1:123456789012:rule/ec2-rule",
        ingestion_time="2015-11-11T21:29:55Z",
    )
    assert rendered == text
    if value is not None:
        assert orjson.loads(rendered) == value


def test_whole_event_variables_are_json_values() -> None:
    rendered = InputTransformer('{"original": <aws.events.event.json>, "envelope": <aws.events.event>}').render(EC2)
    document = orjson.loads(rendered)
    assert document["original"] == EC2
    assert "detail" not in document["envelope"]
    assert document["envelope"]["id"] == EC2["id"]


def test_object_in_a_string_loses_its_inner_quotes_as_on_aws() -> None:
    rendered = InputTransformer('"detail is <detail>"', {"detail": "$.detail"}).render(EC2)
    assert orjson.loads(rendered) == "detail is {instance-id:i-0123456789,state:RUNNING}"


def test_a_quote_in_a_value_cannot_break_the_json() -> None:
    event = {"detail": {"name": 'Robert"); DROP', "path": "C:\\temp\n"}}
    template = '{"greeting": "hello <name> at <path>", "raw": <name>}'
    rendered = InputTransformer(template, {"name": "$.detail.name", "path": "$.detail.path"}).render(event)
    assert orjson.loads(rendered) == {"greeting": 'hello Robert"); DROP at C:\\temp\n', "raw": 'Robert"); DROP'}


def test_numbers_booleans_and_null_go_in_as_json() -> None:
    event = {"detail": {"n": 3.5, "ok": True, "none": None}}
    paths = {"n": "$.detail.n", "ok": "$.detail.ok", "none": "$.detail.none"}
    rendered = InputTransformer('{"n": <n>, "ok": <ok>, "none": <none>, "s": "<n>/<ok>"}', paths).render(event)
    assert orjson.loads(rendered) == {"n": 3.5, "ok": True, "none": None, "s": "3.5/true"}


def test_a_path_that_finds_nothing_renders_as_nothing() -> None:
    rendered = InputTransformer('"[<missing>] <state>"', {**PATHS, "missing": "$.detail.nope"}).render(EC2)
    assert rendered == '"[] RUNNING"'


def test_an_undeclared_placeholder_is_left_as_written() -> None:
    assert InputTransformer('"a <b> c"').render(EC2) == '"a <b> c"'


@pytest.mark.parametrize(
    ("path", "found", "value"),
    [
        ("$", True, EC2),
        ("$.resources[0]", True, EC2["resources"][0]),
        ("$.resources[5]", False, None),
        ("$.detail.*", True, ["i-0123456789", "RUNNING"]),
        ("$.resources[*]", True, EC2["resources"]),
        ("$.detail.state.deeper", False, None),
    ],
)
def test_paths(path: str, found: bool, value: Any) -> None:
    assert resolve(EC2, parse_path(path)) == (found, value)


@pytest.mark.parametrize(
    ("template", "paths", "message"),
    [
        ('"x"', {f"v{i}": "$.a" for i in range(101)}, "at most 100"),
        ('"x"', {"aws.events.rule-name": "$.a"}, "predefined"),
        ('"x"', {"v": "detail.state"}, "must be a string starting with"),
        ('"x"', {"v": "$.detail[state]"}, "at character 9"),
        ('"x"', {"bad name!": "$.a"}, "invalid variable name"),
        ('"see <aws.events.event.json>"', {}, "only be the value of a JSON field"),
        ("", {}, "non-empty"),
    ],
)
def test_bad_transformers_are_refused_precisely(template: str, paths: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        InputTransformer(template, paths)
