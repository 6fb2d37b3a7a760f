"""A bucket's notification configuration, as S3's PutBucketNotificationConfiguration takes it. Pure.

    config = parse_configuration(body)                  # the XML document boto3 sends; raises ObjectError
    xml = configuration_document(config)                # what GetBucketNotificationConfiguration answers
    for destination in config.matching(change): ...     # where a change's `{"Records": [...]}` goes

A destination is one of the platform's queues (`QueueConfigurations`, `QueueArn` as identity.py names
a queue: `arn:aws:sqs:local:000000000000:NAME`) or topics (`TopicConfigurations`, `TopicArn`), with
S3's event names (wildcards `s3:ObjectCreated:*`, `s3:ObjectRemoved:*`) and S3's key filter (one
`prefix` and one `suffix` rule at most). Whether the named queue or topic exists is checked where the
configuration is put (aws/s3.py), not here. `CloudFunctionConfigurations` (Lambda) and EventBridge are
served otherwise: by `@app.on_object` and by the `aws.s3` events every change puts on the bus.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal
from xml.etree import ElementTree

import orjson

from triggerfish.aws import s3_xml
from triggerfish.identity import ACCOUNT_ID, REGION, sns_topic_arn, sqs_queue_arn
from triggerfish.objects.events import Change
from triggerfish.objects.model import ObjectError

Kind = Literal["queue", "topic"]

#: The event names S3 accepts in a notification configuration. Those the platform never produces
#: (restores, replication, lifecycle, tagging, ACLs, reduced redundancy, delete markers) are accepted
#: and never fire, as on a bucket that has none of those features turned on.
EVENT_NAMES = frozenset(
    {
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectRestore:*",
        "s3:ObjectRestore:Post",
        "s3:ObjectRestore:Completed",
        "s3:ObjectRestore:Delete",
        "s3:ReducedRedundancyLostObject",
        "s3:Replication:*",
        "s3:Replication:OperationFailedReplication",
        "s3:Replication:OperationMissedThreshold",
        "s3:Replication:OperationReplicatedAfterThreshold",
        "s3:Replication:OperationNotTracked",
        "s3:LifecycleExpiration:*",
        "s3:LifecycleExpiration:Delete",
        "s3:LifecycleExpiration:DeleteMarkerCreated",
        "s3:LifecycleTransition",
        "s3:IntelligentTiering",
        "s3:ObjectTagging:*",
        "s3:ObjectTagging:Put",
        "s3:ObjectTagging:Delete",
        "s3:ObjectAcl:Put",
    }
)
#: Most destinations one bucket's configuration may hold.
MAX_DESTINATIONS = 100
_ELEMENTS: dict[Kind, tuple[str, str]] = {
    "queue": ("QueueConfiguration", "Queue"),
    "topic": ("TopicConfiguration", "Topic"),
}


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    kind: Kind
    #: The queue's or topic's name (the last part of its ARN).
    name: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""

    @property
    def arn(self) -> str:
        return sqs_queue_arn(self.name) if self.kind == "queue" else sns_topic_arn(self.name)

    def matches(self, change: Change) -> bool:
        if not change.key.startswith(self.prefix) or not change.key.endswith(self.suffix):
            return False
        return any(_event_matches(wanted, change.event_name) for wanted in self.events)


@dataclass(frozen=True, slots=True)
class NotificationConfiguration:
    destinations: tuple[Destination, ...] = ()

    def matching(self, change: Change) -> list[Destination]:
        return [d for d in self.destinations if d.matches(change)]

    def encode(self) -> bytes:
        return orjson.dumps(
            [
                {"id": d.id, "kind": d.kind, "name": d.name, "events": d.events, "prefix": d.prefix, "suffix": d.suffix}
                for d in self.destinations
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> NotificationConfiguration:
        found: list[dict[str, Any]] = orjson.loads(data)
        return cls(
            tuple(
                Destination(d["id"], d["kind"], d["name"], tuple(d["events"]), d["prefix"], d["suffix"]) for d in found
            )
        )


def _event_matches(wanted: str, event_name: str) -> bool:
    name = wanted.removeprefix("s3:")
    if name.endswith(":*"):
        return event_name.startswith(name[:-1])
    return name == event_name


def _invalid(message: str, name: str = "", value: str = "") -> ObjectError:
    if name:
        message = f"{message} (ArgumentName: {name}, ArgumentValue: {value})"
    return ObjectError("InvalidArgument", message)


def destination_name(arn: str, kind: Kind) -> str:
    """The queue's or topic's name an ARN of this platform names; raises InvalidArgument saying what is wrong."""
    service = "sqs" if kind == "queue" else "sns"
    field = "QueueArn" if kind == "queue" else "TopicArn"
    parts = arn.split(":")
    expected = f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:NAME"
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != service or not parts[5]:
        raise _invalid(f"{field} {arn!r} is not an {service.upper()} ARN; this platform's are {expected}", field, arn)
    if parts[3] != REGION or parts[4] != ACCOUNT_ID:
        raise _invalid(
            f"{field} {arn!r} names region {parts[3]!r} and account {parts[4]!r}; this platform's"
            f" {kind}s are {expected}",
            field,
            arn,
        )
    return parts[5]


def parse_configuration(body: bytes) -> NotificationConfiguration:
    """The configuration a PutBucketNotificationConfiguration body holds; raises ObjectError as S3 does."""
    root = s3_xml.parse(body, "NotificationConfiguration")
    destinations: list[Destination] = []
    for element in root:
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "QueueConfiguration":
            destinations.append(_destination(element, "queue"))
        elif tag == "TopicConfiguration":
            destinations.append(_destination(element, "topic"))
        elif tag == "EventBridgeConfiguration":
            continue  # every change is on the bus already (source aws.s3)
        elif tag == "CloudFunctionConfiguration":
            raise _invalid(
                "CloudFunctionConfiguration (Lambda) is not served here: declare the function with"
                " @app.on_object(bucket, events=..., prefix=..., suffix=...) instead",
                "CloudFunctionConfiguration",
                s3_xml.text(element, "CloudFunction") or "",
            )
        else:
            raise ObjectError("MalformedXML", f"The XML you provided was not well-formed: unexpected <{tag}>")
    if len(destinations) > MAX_DESTINATIONS:
        raise _invalid(f"a configuration holds at most {MAX_DESTINATIONS} destinations, not {len(destinations)}")
    seen: set[str] = set()
    for destination in destinations:
        if destination.id in seen:
            raise _invalid("Configuration Ids must be unique", "Id", destination.id)
        seen.add(destination.id)
    return NotificationConfiguration(tuple(destinations))


def _destination(element: ElementTree.Element, kind: Kind) -> Destination:
    _, field = _ELEMENTS[kind]
    arn = s3_xml.text(element, field)
    if not arn:
        raise _invalid(f"{_ELEMENTS[kind][0]} must name its {kind}'s ARN in <{field}>", f"{field}Arn", "")
    name = destination_name(arn.strip(), kind)
    events = tuple((e.text or "").strip() for e in s3_xml.children(element, "Event"))
    if not events:
        raise _invalid(f"the configuration for {arn} names no Event", "Event", "")
    for event in events:
        if event not in EVENT_NAMES:
            raise _invalid(
                f"The event is not supported for notifications: {event!r} (for example s3:ObjectCreated:*,"
                " s3:ObjectCreated:Put, s3:ObjectRemoved:*)",
                "Event",
                event,
            )
    prefix, suffix = _filter(element)
    configuration_id = (s3_xml.text(element, "Id") or "").strip() or _default_id(kind, name, events, prefix, suffix)
    return Destination(configuration_id, kind, name, events, prefix, suffix)


def _filter(element: ElementTree.Element) -> tuple[str, str]:
    rules: dict[str, str] = {}
    for found in s3_xml.children(element, "Filter"):
        for key in s3_xml.children(found, "S3Key"):
            for rule in s3_xml.children(key, "FilterRule"):
                name = (s3_xml.text(rule, "Name") or "").strip().lower()
                value = s3_xml.text(rule, "Value") or ""
                if name not in ("prefix", "suffix"):
                    raise _invalid("filter rule name must be either prefix or suffix", "FilterRule.Name", name)
                if name in rules:
                    raise _invalid(f"Cannot specify more than one {name} rule in a filter.", "FilterRule.Name", name)
                rules[name] = value
    return rules.get("prefix", ""), rules.get("suffix", "")


def _default_id(kind: Kind, name: str, events: tuple[str, ...], prefix: str, suffix: str) -> str:
    # S3 makes up an id when none is given; a stable one keeps Get's answer the same across puts.
    digest = hashlib.sha256(orjson.dumps([kind, name, events, prefix, suffix])).hexdigest()[:16]
    return f"{kind}-{name}-{digest}"


def configuration_document(config: NotificationConfiguration) -> bytes:
    """GetBucketNotificationConfiguration's answer."""
    pairs: s3_xml.Pairs = []
    for d in config.destinations:
        element, field = _ELEMENTS[d.kind]
        children: s3_xml.Pairs = [("Id", d.id), (f"{field}", d.arn)]
        children += [("Event", event) for event in d.events]
        rules: s3_xml.Pairs = []
        if d.prefix:
            rules.append(("FilterRule", [("Name", "Prefix"), ("Value", d.prefix)]))
        if d.suffix:
            rules.append(("FilterRule", [("Name", "Suffix"), ("Value", d.suffix)]))
        if rules:
            children.append(("Filter", [("S3Key", rules)]))
        pairs.append((element, children))
    return s3_xml.xml_document("NotificationConfiguration", pairs)


def s3_test_event(bucket: str, when: str, request_id: str) -> dict[str, Any]:
    """The message S3 sends a queue when a configuration naming it is put."""
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": when,
        "Bucket": bucket,
        "RequestId": request_id,
        "HostId": request_id,
    }


#: The keys of one `notifications` entry of `[buckets.NAME]` in triggerfish.toml.
SETTING_KEYS = ("queue", "topic", "events", "prefix", "suffix", "id")
#: The events an entry that names none gets.
DEFAULT_EVENTS = ("s3:ObjectCreated:*",)
_DESTINATION_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")


def configuration_from_settings(entries: object) -> NotificationConfiguration:
    """The configuration `[buckets.NAME] notifications = [...]` of triggerfish.toml declares; raises ValueError
    naming the entry and the setting at fault, and how to write it.

        notifications = [{ queue = "resize", events = ["s3:ObjectCreated:*"], prefix = "images/", suffix = ".jpg" }]
    """
    example = '[{ queue = "resize", events = ["s3:ObjectCreated:*"], prefix = "images/" }]'
    if not isinstance(entries, list):
        raise ValueError(f"notifications must be a list of tables such as {example}, not {entries!r}")
    if len(entries) > MAX_DESTINATIONS:
        raise ValueError(f"notifications holds at most {MAX_DESTINATIONS} entries, not {len(entries)}")
    destinations: list[Destination] = []
    for number, entry in enumerate(entries, 1):
        where = f"notifications entry {number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a table such as {example[1:-1]}, not {entry!r}")
        destinations.append(_setting(entry, where))
    seen: set[str] = set()
    for destination in destinations:
        if destination.id in seen:
            raise ValueError(f"two notifications entries have the id {destination.id!r}; ids must be unique")
        seen.add(destination.id)
    return NotificationConfiguration(tuple(destinations))


def _setting(entry: dict[str, Any], where: str) -> Destination:
    for key in entry:
        if key not in SETTING_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; the keys are {', '.join(SETTING_KEYS)}")
    kinds = [kind for kind in ("queue", "topic") if kind in entry]
    if len(kinds) != 1:
        raise ValueError(f'{where}: name exactly one destination, queue = "NAME" or topic = "NAME"')
    kind: Kind = "queue" if kinds[0] == "queue" else "topic"
    name = entry[kind]
    if not isinstance(name, str) or not _DESTINATION_NAME.fullmatch(name):
        raise ValueError(
            f"{where}: {kind} {name!r} is not a {kind} name (letters, digits, - and _; a FIFO queue or topic"
            " cannot receive S3 notifications)"
        )
    events = entry.get("events", list(DEFAULT_EVENTS))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValueError(f"{where}: events must be a non-empty list of S3 event names, not {events!r}")
    for event in events:
        if event not in EVENT_NAMES:
            raise ValueError(
                f"{where}: {event!r} is not an S3 event name; for example s3:ObjectCreated:*, s3:ObjectCreated:Put,"
                " s3:ObjectRemoved:*"
            )
    rules = {}
    for rule in ("prefix", "suffix", "id"):
        value = entry.get(rule, "")
        if not isinstance(value, str):
            raise ValueError(f"{where}: {rule} must be a string, not {value!r}")
        rules[rule] = value
    prefix, suffix = rules["prefix"], rules["suffix"]
    configuration_id = rules["id"] or _default_id(kind, name, tuple(events), prefix, suffix)
    return Destination(configuration_id, kind, name, tuple(events), prefix, suffix)
