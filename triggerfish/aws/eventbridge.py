"""EventBridge (`AWSEvents.<Operation>`, JSON 1.1) over the app's buses and rules.

PutEvents publishes through the platform's publisher, as `POST /-/events` does, so a rule or an
`@app.on_event` function sees the event. Rules made here are EventBridge's: PutRule makes a rule
with no targets, PutTargets adds them, a disabled rule or one with no target matches nothing. Each
is kept as its AWS definition (`EVENTS_RULES_NAMESPACE`) and, while enabled with targets, as a
run-time rule of the bus (bus/rules.py), which is what routes events. Rules declared by the app
(`@app.on_event`) and rules made with the control API are listed and described too; the app's own
change only with its code.

Targets are named by ARN, as EventBridge names them: a function of the app
(`arn:aws:lambda:REGION:ACCOUNT:function:APP-FUNCTION`), an SQS queue, an SNS topic or another
event bus of the app. They receive the EventBridge envelope.
"""

from __future__ import annotations

import re
import time
from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.aws.endpoint import AwsCall, Operation, Service
from triggerfish.aws.protocol import AwsError, optional_int, optional_list, optional_text, required_text
from triggerfish.bus.rules import MAX_TARGETS, Rule, RuleTarget
from triggerfish.errors import InvalidEventError, InvalidInputError, InvalidPatternError
from triggerfish.events.eventbridge import from_put_events_entry
from triggerfish.events.patterns import compile_pattern
from triggerfish.identity import bus_rule_arn, event_bus_arn, function_arn, sns_topic_arn, sqs_queue_arn
from triggerfish.names import EVENTS_RULES_NAMESPACE
from triggerfish.store.base import check_name

MAX_ENTRIES = 10
_RULE_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
_RECORD = "rule/"
_STATES = ("ENABLED", "DISABLED")
# Replay names mark the replayed events (bus/archive.py), so they follow its rule rather than EventBridge's.
_REPLAY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_TARGET_FIELDS = frozenset({"Id", "Arn", "Input", "InputPath", "InputTransformer", "DeadLetterConfig", "RetryPolicy"})


def _validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def _not_found(name: str, bus: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"Rule {name} does not exist on EventBus {bus}.")


def _bus(params: dict[str, Any], name: str = "EventBusName") -> str:
    bus = (optional_text(params, name) or "default").rsplit("/", 1)[-1]
    try:
        return check_name("bus", bus)
    except InvalidInputError as exc:
        raise _validation(f"{name}: {exc}") from None


def _rule_name(params: dict[str, Any], name: str = "Name") -> str:
    rule = required_text(params, name)
    if not _RULE_NAME.fullmatch(rule):
        raise _validation(f"{name} {rule!r} must be 1 to 64 characters from letters, digits, . - _")
    return rule


# --- PutEvents ---------------------------------------------------------------------------------


async def put_events(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    entries = optional_list(params, "Entries")
    if not 1 <= len(entries) <= MAX_ENTRIES:
        raise _validation(f"Entries must hold 1 to {MAX_ENTRIES} entries, not {len(entries)}")
    results: list[dict[str, Any]] = [{} for _ in entries]
    by_bus: dict[str, list[tuple[int, Any]]] = {}
    for index, entry in enumerate(entries):
        try:
            bus, event = from_put_events_entry(entry, index=index)
            check_name("bus", bus)
        except InvalidEventError as exc:
            code = "MalformedDetail" if exc.attribute.endswith("Detail") else "InvalidArgument"
            results[index] = {"ErrorCode": code, "ErrorMessage": str(exc)}
            continue
        except InvalidInputError as exc:
            results[index] = {"ErrorCode": "InvalidArgument", "ErrorMessage": str(exc)}
            continue
        by_bus.setdefault(bus, []).append((index, event))
    for bus, found in by_bus.items():
        ids = await call.platform.publish(bus, [event for _, event in found])
        for (index, _), event_id in zip(found, ids, strict=True):
            results[index] = {"EventId": event_id}
    return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


async def list_event_buses(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    prefix = optional_text(params, "NamePrefix") or ""
    buses = sorted({"default", *await call.platform.bus.buses()})
    return {"EventBuses": [{"Name": b, "Arn": event_bus_arn(b)} for b in buses if b.startswith(prefix)]}


async def test_event_pattern(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    pattern = _pattern(required_text(params, "EventPattern"))
    text = required_text(params, "Event")
    try:
        event = loads(text.encode("utf-8"), where="Event")
    except InvalidInputError as exc:
        raise _validation(f"Event is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise _validation("Event must be a JSON object")
    missing = [k for k in ("id", "account", "source", "time", "region", "detail-type") if k not in event]
    if missing:
        raise _validation(f"Parameter Event is not valid: it lacks {', '.join(missing)}")
    return {"Result": compile_pattern(pattern).matches(event)}


def _pattern(text: str) -> dict[str, Any]:
    try:
        pattern = loads(text.encode("utf-8"), where="EventPattern")
        if not isinstance(pattern, dict):
            raise InvalidPatternError("the pattern must be a JSON object")
        compile_pattern(pattern)
    except InvalidInputError as exc:
        raise AwsError("InvalidEventPatternException", f"Event pattern is not valid. Reason: {exc}") from None
    return pattern


# --- rules: the AWS definitions ----------------------------------------------------------------


async def _record(call: AwsCall, bus: str, name: str) -> dict[str, Any] | None:
    found = await call.platform.store.kv.get(EVENTS_RULES_NAMESPACE, f"{_RECORD}{bus}/{name}")
    if found is None:
        return None
    record: dict[str, Any] = loads(found.value, where="EventBridge rule record")
    return record


def _adopted(call: AwsCall, bus: str, name: str) -> dict[str, Any] | None:
    """The AWS definition of a rule made another way (the app, the control API); None when there is none."""
    rule = call.platform.bus.rules.get(bus, name)
    if rule is None:
        return None
    app = call.platform.current.app_name
    return {
        "name": name,
        "bus": bus,
        "pattern": dumps(dict(rule.pattern)).decode("utf-8"),
        "state": "ENABLED",
        "description": None,
        "targets": [_aws_target(app, target) for target in rule.targets],
        "managed_by": "triggerfish-app" if rule.source == "app" else None,
    }


async def _definition(call: AwsCall, bus: str, name: str) -> dict[str, Any] | None:
    return await _record(call, bus, name) or _adopted(call, bus, name)


async def _save(call: AwsCall, record: dict[str, Any]) -> None:
    """Keep the AWS definition and make the bus's run-time rule agree with it."""
    bus, name = record["bus"], record["name"]
    await call.platform.store.kv.put(EVENTS_RULES_NAMESPACE, f"{_RECORD}{bus}/{name}", dumps(record))
    await _apply(call, record)


async def _apply(call: AwsCall, record: dict[str, Any]) -> None:
    bus, name = record["bus"], record["name"]
    rules = call.platform.bus.rules
    if record["state"] == "ENABLED" and record["targets"]:
        app = call.platform.current.app_name
        targets = tuple(_platform_target(app, target) for target in record["targets"])
        await rules.put(Rule(name, bus, loads(record["pattern"].encode("utf-8"), where="pattern"), targets))
    elif rules.get(bus, name) is not None:
        await rules.remove(bus, name)
    await call.platform.changed("rules")


def _refuse_app_rule(call: AwsCall, bus: str, name: str) -> None:
    rule = call.platform.bus.rules.get(bus, name)
    if rule is not None and rule.source == "app":
        raise AwsError(
            "ManagedRuleException",
            f"rule {name!r} on bus {bus!r} comes from the app's @app.on_event and changes only with its code;"
            " give this rule another name",
        )


async def put_rule(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name, bus = _rule_name(params), _bus(params)
    if params.get("ScheduleExpression") is not None:
        raise _validation("ScheduleExpression rules are not served here: declare @app.schedule(...) in the app")
    text = optional_text(params, "EventPattern")
    if text is None:
        raise _validation("Parameter(s) EventPattern must be specified.")
    pattern = _pattern(text)
    state = optional_text(params, "State") or "ENABLED"
    if state not in _STATES:
        raise _validation(f"State must be ENABLED or DISABLED, not {state!r}")
    _refuse_app_rule(call, bus, name)
    known = await _definition(call, bus, name)
    record = {
        "name": name,
        "bus": bus,
        "pattern": dumps(pattern).decode("utf-8"),
        "state": state,
        "description": optional_text(params, "Description"),
        "targets": [] if known is None else known["targets"],
        "created_at": time.time() if known is None else known.get("created_at", time.time()),
        "managed_by": None,
    }
    await _save(call, record)
    return {"RuleArn": bus_rule_arn(bus, name)}


async def _known(call: AwsCall, params: dict[str, Any], name_field: str) -> dict[str, Any]:
    name, bus = _rule_name(params, name_field), _bus(params)
    found = await _definition(call, bus, name)
    if found is None:
        raise _not_found(name, bus)
    return found


async def describe_rule(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    return _described(await _known(call, params, "Name"))


def _described(record: dict[str, Any]) -> dict[str, Any]:
    document = {
        "Name": record["name"],
        "Arn": bus_rule_arn(record["bus"], record["name"]),
        "EventPattern": record["pattern"],
        "State": record["state"],
        "EventBusName": record["bus"],
    }
    if record.get("description"):
        document["Description"] = record["description"]
    if record.get("managed_by"):
        document["ManagedBy"] = record["managed_by"]
    return document


async def list_rules(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    bus = _bus(params)
    prefix = optional_text(params, "NamePrefix") or ""
    limit = optional_int(params, "Limit", 1, 100)
    after = optional_text(params, "NextToken")
    stored = await call.platform.store.kv.scan(EVENTS_RULES_NAMESPACE, prefix=f"{_RECORD}{bus}/", limit=100_000)
    records = {r["name"]: r for r in (loads(found.value, where="EventBridge rule record") for found in stored)}
    for rule in call.platform.bus.rules.all(bus):
        if rule.id not in records:
            adopted = _adopted(call, bus, rule.id)
            if adopted is not None:
                records[rule.id] = adopted
    names = [n for n in sorted(records) if n.startswith(prefix) and (after is None or n > after)]
    shown = names if limit is None else names[:limit]
    document: dict[str, Any] = {"Rules": [_described(records[n]) for n in shown]}
    if limit is not None and len(names) > limit:
        document["NextToken"] = shown[-1]
    return document


async def _set_state(call: AwsCall, params: dict[str, Any], state: str) -> dict[str, Any]:
    record = await _known(call, params, "Name")
    _refuse_app_rule(call, record["bus"], record["name"])
    await _save(call, {**record, "state": state})
    return {}


async def enable_rule(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    return await _set_state(call, params, "ENABLED")


async def disable_rule(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    return await _set_state(call, params, "DISABLED")


async def delete_rule(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name, bus = _rule_name(params), _bus(params)
    record = await _definition(call, bus, name)
    if record is None:
        return {}  # as EventBridge: deleting a rule that is not there succeeds
    _refuse_app_rule(call, bus, name)
    if record["targets"] and not params.get("Force"):
        raise _validation("Rule can't be deleted since it has targets.")
    await call.platform.store.kv.delete(EVENTS_RULES_NAMESPACE, f"{_RECORD}{bus}/{name}")
    await _apply(call, {**record, "state": "DISABLED"})
    return {}


# --- targets ------------------------------------------------------------------------------------


async def put_targets(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    record = await _known(call, params, "Rule")
    _refuse_app_rule(call, record["bus"], record["name"])
    given = optional_list(params, "Targets")
    if not given:
        raise _validation("Targets must hold at least one target")
    app = call.platform.current.app_name
    targets = {t["Id"]: t for t in record["targets"]}
    failed = []
    for target in given:
        target_id = target.get("Id") if isinstance(target, dict) else None
        try:
            if not isinstance(target_id, str) or not 1 <= len(target_id) <= 64:
                raise InvalidInputError("each target needs an Id of 1 to 64 characters")
            _platform_target(app, target)  # checked as the rule will use it
            if target_id not in targets and len(targets) >= MAX_TARGETS:
                raise AwsError("LimitExceededException", f"a rule takes at most {MAX_TARGETS} targets")
            targets[target_id] = target
        except AwsError as error:
            failed.append({"TargetId": target_id, "ErrorCode": error.code, "ErrorMessage": error.message})
        except InvalidInputError as exc:
            failed.append({"TargetId": target_id, "ErrorCode": "ValidationException", "ErrorMessage": str(exc)})
    await _save(call, {**record, "targets": list(targets.values()), "managed_by": None})
    return {"FailedEntryCount": len(failed), "FailedEntries": failed}


async def remove_targets(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    record = await _known(call, params, "Rule")
    _refuse_app_rule(call, record["bus"], record["name"])
    ids = [str(i) for i in optional_list(params, "Ids")]
    if not ids:
        raise _validation("Ids must name at least one target")
    present = {t["Id"] for t in record["targets"]}
    failed = [
        {"TargetId": i, "ErrorCode": "ResourceNotFoundException", "ErrorMessage": f"no target {i!r} on the rule"}
        for i in ids
        if i not in present
    ]
    kept = [t for t in record["targets"] if t["Id"] not in ids]
    await _save(call, {**record, "targets": kept, "managed_by": None})
    return {"FailedEntryCount": len(failed), "FailedEntries": failed}


async def list_targets_by_rule(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    record = await _known(call, params, "Rule")
    return {"Targets": record["targets"]}


def _platform_target(app: str, target: dict[str, Any]) -> RuleTarget:
    """An EventBridge target as the bus's rule delivers it; raises InvalidInputError saying what is unsupported."""
    arn = target.get("Arn")
    if not isinstance(arn, str):
        raise InvalidInputError("each target needs an Arn")
    unsupported = sorted(set(target) - _TARGET_FIELDS)
    if unsupported:
        raise InvalidInputError(f"target field {unsupported[0]} is not served here")
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise InvalidInputError(f"{arn!r} is not an ARN")
    service, resource = parts[2], parts[5]
    if service == "lambda" and resource.startswith("function:"):
        function = resource.split(":")[1]
        kind, name = "function", function.removeprefix(f"{app}-")
    elif service == "sqs":
        kind, name = "queue", resource
    elif service == "sns":
        kind, name = "topic", resource
    elif service == "events" and resource.startswith("event-bus/"):
        kind, name = "bus", resource.removeprefix("event-bus/")
    else:
        raise InvalidInputError(f"target {arn!r}: the targets served are the app's functions, queues, topics and buses")
    document: dict[str, Any] = {"id": target["Id"], "kind": kind, "name": name, "shape": "eventbridge"}
    if "Input" in target:
        document["transformer"] = {"input_template": target["Input"]}
    elif "InputPath" in target:
        document["transformer"] = {"input_template": "<value>", "input_paths": {"value": target["InputPath"]}}
    elif "InputTransformer" in target:
        given = target["InputTransformer"] or {}
        document["transformer"] = {
            "input_template": given.get("InputTemplate"),
            "input_paths": given.get("InputPathsMap") or {},
        }
    dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
    if dead_letter is not None:
        document["dead_letter"] = str(dead_letter).rsplit(":", 1)[-1]
    retry = target.get("RetryPolicy") or {}
    if retry:
        document["retry"] = {
            k: v
            for k, v in (
                ("max_attempts", retry.get("MaximumRetryAttempts")),
                ("max_event_age", retry.get("MaximumEventAgeInSeconds")),
            )
            if v is not None
        }
    return RuleTarget.from_dict(document)


def _aws_target(app: str, target: RuleTarget) -> dict[str, Any]:
    """A rule's target as EventBridge lists it."""
    if target.kind == "function":
        arn = function_arn(app, target.name)
    elif target.kind == "queue":
        arn = sqs_queue_arn(target.name)
    elif target.kind == "topic":
        arn = sns_topic_arn(target.name)
    elif target.kind == "bus":
        arn = event_bus_arn(target.name)
    else:
        arn = target.name  # a webhook: its URL
    return {"Id": target.id, "Arn": arn}


# --- replays: the bus's log is its archive ----------------------------------------------------------


def _time(params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _validation(f"{name} must be a time (epoch seconds, as the SDKs send it)")
    return float(value)


async def start_replay(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = _rule_name(params, "ReplayName")
    if not _REPLAY_NAME.fullmatch(name):
        raise _validation(f"ReplayName {name!r}: use 1 to 64 lowercase letters, digits, - and _ (it marks the events)")
    source = required_text(params, "EventSourceArn")
    if ":archive/" not in source:
        raise _validation(f"EventSourceArn {source!r} must be an archive ARN: arn:aws:events:...:archive/BUS")
    bus = source.rsplit("/", 1)[-1]
    destination = params.get("Destination")
    if not isinstance(destination, dict) or not isinstance(destination.get("Arn"), str):
        raise _validation("Destination must name the event bus ARN to replay to")
    if destination["Arn"].rsplit("/", 1)[-1] != bus:
        raise _validation(f"Destination must be the archive's own bus {event_bus_arn(bus)}")
    start, end = _time(params, "EventStartTime"), _time(params, "EventEndTime")
    if await _replay(call, name) is not None:
        raise AwsError("ResourceAlreadyExistsException", f"Replay {name} already exists.")
    rules: list[str | None] = [str(arn).rsplit("/", 1)[-1] for arn in destination.get("FilterArns") or []]
    for rule in rules:
        if rule is not None and call.platform.bus.rules.get(bus, rule) is None:
            raise _not_found(rule, bus)
    began = time.time()
    replayed = 0
    try:
        for rule in rules or [None]:
            replayed += await call.platform.archive.replay(bus, start, end, rule=rule, name=name)
    except InvalidInputError as exc:
        raise _validation(str(exc)) from None
    record = {
        "ReplayName": name,
        "ReplayArn": f"{event_bus_arn(bus).rsplit(':', 1)[0]}:replay/{name}",
        "Description": optional_text(params, "Description"),
        "State": "COMPLETED",
        "EventSourceArn": source,
        "Destination": destination,
        "EventStartTime": start,
        "EventEndTime": end,
        "ReplayStartTime": began,
        "ReplayEndTime": time.time(),
        "Deliveries": replayed,
    }
    await call.platform.store.kv.put(EVENTS_RULES_NAMESPACE, f"replay/{name}", dumps(record))
    return {"ReplayArn": record["ReplayArn"], "State": "COMPLETED", "ReplayStartTime": began}


async def _replay(call: AwsCall, name: str) -> dict[str, Any] | None:
    found = await call.platform.store.kv.get(EVENTS_RULES_NAMESPACE, f"replay/{name}")
    if found is None:
        return None
    record: dict[str, Any] = loads(found.value, where="EventBridge replay record")
    return record


async def describe_replay(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = _rule_name(params, "ReplayName")
    record = await _replay(call, name)
    if record is None:
        raise AwsError("ResourceNotFoundException", f"Replay {name} does not exist.")
    record.pop("Deliveries", None)
    return {k: v for k, v in record.items() if v is not None}


SERVICE = Service(
    name="events",
    target_prefix="AWSEvents",
    protocol="json1.1",
    operations={
        "PutEvents": Operation(put_events, "publish"),
        "ListEventBuses": Operation(list_event_buses, "read"),
        "TestEventPattern": Operation(test_event_pattern, "read", also=("publish", "configure")),
        "PutRule": Operation(put_rule, "configure"),
        "DescribeRule": Operation(describe_rule, "read", also=("configure",)),
        "ListRules": Operation(list_rules, "read", also=("configure",)),
        "EnableRule": Operation(enable_rule, "configure"),
        "DisableRule": Operation(disable_rule, "configure"),
        "DeleteRule": Operation(delete_rule, "configure"),
        "PutTargets": Operation(put_targets, "configure"),
        "RemoveTargets": Operation(remove_targets, "configure"),
        "ListTargetsByRule": Operation(list_targets_by_rule, "read", also=("configure",)),
        "StartReplay": Operation(start_replay, "configure"),
        "DescribeReplay": Operation(describe_replay, "read", also=("configure",)),
    },
)
