"""SNS in its query protocol (form bodies in, XML out) over the app's topics.

A topic here is one of the app's topics (subscribed to by its code or at run time, or published to)
or one made with CreateTopic (kept in `SNS_TOPICS_NAMESPACE`). Publish goes through the platform's
topics, as `context.publish_topic` and the control API do, so the app's `@app.on_topic` functions
and run-time subscriptions get the message. Subscribe makes a run-time subscription: an SQS queue,
a function of the app or an http(s) URL, with SNS's filter policy attributes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from triggerfish._json import dumps, loads
from triggerfish.aws.endpoint import AwsCall, Operation, Service
from triggerfish.aws.protocol import (
    AwsError,
    XmlMap,
    optional_text,
    query_entries,
    query_members,
    required_text,
)
from triggerfish.aws.sns_links import confirm
from triggerfish.errors import FunctionNotFoundError, InvalidInputError
from triggerfish.identity import ACCOUNT_ID, function_arn, sns_topic_arn, sqs_queue_arn
from triggerfish.names import SNS_TOPICS_NAMESPACE
from triggerfish.triggers.sns import MAX_SUBJECT_CHARS, check_topic
from triggerfish.triggers.subscriptions import Subscription

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"
_RECORD = "topic/"
_PAGE = 100
MAX_BATCH = 10
# Kept and shown back, not enforced: the platform has no IAM policies, KMS or delivery logging.
_KEPT = frozenset({"DisplayName", "Policy", "DeliveryPolicy", "KmsMasterKeyId", "SignatureVersion", "TracingConfig"})


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameter", f"Invalid parameter: {message}")


def _not_found(what: str) -> AwsError:
    return AwsError("NotFound", f"{what} does not exist", status=404)


async def _names(call: AwsCall) -> list[str]:
    return await app_topic_names(call.platform)


async def app_topic_names(platform: Platform) -> list[str]:
    """The app's topics as SNS shows them: what S3's notification configuration may name too."""
    names = set(await platform.topics.names())
    for found in await platform.store.kv.scan(SNS_TOPICS_NAMESPACE, prefix=_RECORD, limit=100_000):
        name = found.key[len(_RECORD) :]
        # A deleted topic keeps its log (retention trims it) but is gone for SNS until it is made again.
        if loads(found.value, where="SNS topic record").get("deleted"):
            names.discard(name)
        else:
            names.add(name)
    return sorted(names)


async def _topic(call: AwsCall, params: dict[str, Any], field: str = "TopicArn") -> str:
    arn = required_text(params, field)
    name = arn.rsplit(":", 1)[-1]
    if name not in await _names(call):
        raise _not_found(f"Topic {arn}")
    return name


async def create_topic(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = required_text(params, "Name")
    attributes = query_entries(params, "Attributes", "key", "value")
    unknown = sorted(set(attributes) - _KEPT)
    if "FifoTopic" in attributes or name.endswith(".fifo"):
        raise _invalid("FIFO topics are not served here")
    if unknown:
        raise _invalid(f"Attributes: unknown attribute {unknown[0]}")
    try:
        check_topic(name)
    except InvalidInputError as exc:
        raise _invalid(f"Topic Name: {exc}") from None
    await call.platform.store.kv.put(SNS_TOPICS_NAMESPACE, _RECORD + name, dumps({"attributes": attributes}))
    return {"TopicArn": sns_topic_arn(name)}


async def list_topics(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    after = optional_text(params, "NextToken")
    names = [n for n in await _names(call) if after is None or n > after]
    shown = names[:_PAGE]
    result: dict[str, Any] = {"Topics": [{"TopicArn": sns_topic_arn(n)} for n in shown]}
    if len(names) > _PAGE:
        result["NextToken"] = shown[-1]
    return result


async def delete_topic(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    arn = required_text(params, "TopicArn")
    name = arn.rsplit(":", 1)[-1]
    if name not in await _names(call):
        return {}  # as SNS: deleting a topic that is not there succeeds
    subscriptions = await call.platform.topics.subscriptions(name)
    if any(s.source == "app" for s in subscriptions):
        raise _invalid(f"topic {name!r} has subscriptions declared by the app (@app.on_topic); remove them there")
    for subscription in subscriptions:
        await call.platform.topics.unsubscribe(subscription)
    await call.platform.store.kv.put(SNS_TOPICS_NAMESPACE, _RECORD + name, dumps({"deleted": True}))
    await call.platform.changed("subscriptions")
    return {}


def _message_attributes(params: dict[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    index = 1
    while f"MessageAttributes.entry.{index}.Name" in params:
        base = f"MessageAttributes.entry.{index}"
        name = str(params[f"{base}.Name"])
        data_type = str(params.get(f"{base}.Value.DataType", ""))
        if data_type.startswith("Binary"):
            raise _invalid(f"MessageAttributes.{name}: Binary attributes are not served here")
        if not data_type.startswith(("String", "Number")):
            raise _invalid(f"The message attribute '{name}' has an invalid message attribute type {data_type!r}")
        value = params.get(f"{base}.Value.StringValue")
        if not value:
            raise _invalid(f"The message attribute '{name}' must contain non-empty message attribute value")
        attributes[name] = str(value)
        index += 1
    return attributes


def _message(params: dict[str, Any]) -> str:
    message = required_text(params, "Message")
    if params.get("MessageStructure") == "json":
        try:
            structured = loads(message.encode("utf-8"), where="Message")
        except InvalidInputError as exc:
            raise _invalid(f"Message Structure - JSON message body failed to parse: {exc}") from None
        if not isinstance(structured, dict) or not isinstance(structured.get("default"), str):
            raise _invalid("Message Structure - No default entry in JSON message body")
        message = structured["default"]
    return message


def _subject(params: dict[str, Any]) -> str | None:
    subject = optional_text(params, "Subject")
    if subject is not None and (not subject or len(subject) > MAX_SUBJECT_CHARS):
        raise _invalid(f"Subject: must be 1 to {MAX_SUBJECT_CHARS} characters")
    return subject


async def publish(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("TargetArn") or params.get("PhoneNumber"):
        raise _invalid("only TopicArn is served here (no endpoints or phone numbers)")
    name = await _topic(call, params)
    message, subject, attributes = _message(params), _subject(params), _message_attributes(params)
    try:
        message_id = await call.platform.topics.publish(name, message, subject=subject, attributes=attributes)
    except InvalidInputError as exc:
        raise _invalid(str(exc)) from None
    return {"MessageId": message_id}


async def publish_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _topic(call, params)
    entries = query_members(params, "PublishBatchRequestEntries")
    if not entries:
        raise AwsError("EmptyBatchRequest", "The batch request doesn't contain any entries")
    if len(entries) > MAX_BATCH:
        raise AwsError("TooManyEntriesInBatchRequest", f"The batch request contains more entries than {MAX_BATCH}")
    ids = [entry.get("Id", "") for entry in entries]
    if len(set(ids)) != len(ids):
        raise AwsError("BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id")
    successful, failed = [], []
    for entry_id, entry in zip(ids, entries, strict=True):
        try:
            message = _message(entry)
            subject = _subject(entry)
            attributes = _message_attributes(entry)
            message_id = await call.platform.topics.publish(name, message, subject=subject, attributes=attributes)
        except AwsError as error:
            failed.append({"Id": entry_id, "Code": error.code, "Message": error.message, "SenderFault": True})
            continue
        except InvalidInputError as exc:
            failed.append({"Id": entry_id, "Code": "InvalidParameter", "Message": str(exc), "SenderFault": True})
            continue
        successful.append({"Id": entry_id, "MessageId": message_id})
    return {"Successful": successful, "Failed": failed}


async def subscribe(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _topic(call, params)
    protocol = required_text(params, "Protocol")
    endpoint = required_text(params, "Endpoint")
    attributes = query_entries(params, "Attributes", "key", "value")
    app = call.platform.current.app_name
    if protocol == "sqs":
        kind, target = "queue", endpoint.rsplit(":", 1)[-1]
    elif protocol == "lambda":
        kind, target = "function", endpoint.split(":function:", 1)[-1].split(":")[0].removeprefix(f"{app}-")
    elif protocol in ("http", "https"):
        kind, target = "webhook", endpoint
        if not endpoint.startswith(f"{protocol}://"):
            raise _invalid(f"Endpoint: an {protocol} subscription's endpoint is an {protocol}:// URL")
    else:
        raise _invalid(f"Protocol {protocol!r}: the protocols served are sqs, lambda, http and https")
    unknown = sorted(set(attributes) - set(_SUBSCRIPTION_ATTRIBUTES))
    if unknown:
        raise _invalid(f"Attributes Reason: Unknown attribute {unknown[0]}")
    settings = _subscription_settings(attributes)
    topics = call.platform.topics
    # SNS's handshake for http(s): nothing is delivered until the endpoint confirms (when the platform signs,
    # which it does whenever it is served: the confirmation carries a signed Token).
    handshake = kind == "webhook" and topics.deliverer.signing is not None
    try:
        subscription = await topics.subscribe(
            name,
            kind,  # type: ignore[arg-type]
            target,
            filter=settings["filter"],
            filter_scope=settings["filter_scope"],
            raw=settings["raw"],
            dead_letter=settings["dead_letter"],
            pending=handshake,
        )
    except FunctionNotFoundError as exc:
        raise _invalid(f"Endpoint: {exc}") from None
    except InvalidInputError as exc:
        raise _invalid(str(exc)) from None
    await call.platform.changed("subscriptions")
    if not subscription.pending:
        return {"SubscriptionArn": subscription.arn}
    topics.deliverer.send_confirmation(subscription)  # again on each Subscribe, as SNS
    returned = params.get("ReturnSubscriptionArn", "false").lower() == "true"
    return {"SubscriptionArn": subscription.arn if returned else "pending confirmation"}


#: The subscription attributes Subscribe and SetSubscriptionAttributes take, with their defaults.
_SUBSCRIPTION_ATTRIBUTES = {
    "FilterPolicy": None,
    "FilterPolicyScope": "MessageAttributes",
    "RawMessageDelivery": "false",
    "RedrivePolicy": None,
}


def _subscription_settings(attributes: dict[str, str]) -> dict[str, Any]:
    """SNS's subscription attributes as the platform's subscription settings; InvalidParameter naming the bad one."""
    scope = {"MessageAttributes": "attributes", "MessageBody": "body"}.get(
        attributes.get("FilterPolicyScope") or "MessageAttributes"
    )
    if scope is None:
        raise _invalid("FilterPolicyScope: must be MessageAttributes or MessageBody")
    raw = (attributes.get("RawMessageDelivery") or "false").lower()
    if raw not in ("true", "false"):
        raise _invalid("RawMessageDelivery: must be true or false")
    try:
        policy = json.loads(attributes["FilterPolicy"]) if attributes.get("FilterPolicy") else None
        redrive = json.loads(attributes["RedrivePolicy"]) if attributes.get("RedrivePolicy") else None
    except ValueError as exc:
        raise _invalid(f"Attributes: not JSON: {exc}") from None
    dead_letter = None
    if isinstance(redrive, dict) and isinstance(redrive.get("deadLetterTargetArn"), str):
        dead_letter = redrive["deadLetterTargetArn"].rsplit(":", 1)[-1]
    elif redrive is not None:
        raise _invalid("RedrivePolicy: must be an object naming deadLetterTargetArn (an SQS queue's ARN)")
    return {"filter": policy, "filter_scope": scope, "raw": raw == "true", "dead_letter": dead_letter}


def _attributes_of(subscription: Subscription) -> dict[str, str]:
    """A subscription's settings as SNS's attributes."""
    attributes = {
        "FilterPolicyScope": "MessageBody" if subscription.filter_scope == "body" else "MessageAttributes",
        "RawMessageDelivery": "true" if subscription.raw else "false",
    }
    if subscription.filter is not None:
        attributes["FilterPolicy"] = json.dumps(subscription.filter)
    if subscription.dead_letter is not None:
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": sqs_queue_arn(subscription.dead_letter)})
    return attributes


async def confirm_subscription(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _topic(call, params)
    token = required_text(params, "Token")
    return {"SubscriptionArn": (await confirm(call.platform, name, token)).arn}


async def _subscription(call: AwsCall, params: dict[str, Any]) -> Subscription:
    arn = required_text(params, "SubscriptionArn")
    found = next((s for s in await call.platform.topics.subscriptions() if s.arn == arn), None)
    if found is None:
        raise _not_found(f"Subscription {arn}")
    return found


async def get_subscription_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    subscription = await _subscription(call, params)
    listed = _listed(subscription, call.platform.current.app_name)
    attributes = {
        "SubscriptionArn": subscription.arn,
        "TopicArn": listed["TopicArn"],
        "Owner": ACCOUNT_ID,
        "Protocol": listed["Protocol"],
        "Endpoint": listed["Endpoint"],
        "PendingConfirmation": "true" if subscription.pending else "false",
        "ConfirmationWasAuthenticated": "false" if subscription.kind == "webhook" else "true",
        **_attributes_of(subscription),
    }
    return {"Attributes": XmlMap(attributes)}


async def set_subscription_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    subscription = await _subscription(call, params)
    name = required_text(params, "AttributeName")
    if name not in _SUBSCRIPTION_ATTRIBUTES:
        raise _invalid(f"AttributeName: one of {', '.join(_SUBSCRIPTION_ATTRIBUTES)}, not {name!r}")
    attributes = {**_attributes_of(subscription), name: optional_text(params, "AttributeValue") or ""}
    settings = _subscription_settings(attributes)
    if subscription.raw != settings["raw"] and subscription.kind == "function":
        raise _invalid("RawMessageDelivery: raw delivery is for sqs and http(s) subscriptions")
    try:
        await call.platform.topics.change(dataclasses.replace(subscription, **settings))
    except InvalidInputError as exc:
        raise _invalid(str(exc)) from None
    await call.platform.changed("subscriptions")
    return {}


async def unsubscribe(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    arn = required_text(params, "SubscriptionArn")
    try:
        removed = await call.platform.topics.unsubscribe(arn)
    except InvalidInputError as exc:
        raise _invalid(str(exc)) from None
    if not removed:
        raise _not_found(f"Subscription {arn}")
    await call.platform.changed("subscriptions")
    return {}


def _listed(subscription: Subscription, app: str) -> dict[str, Any]:
    """A subscription as SNS lists it (a pending one's ARN is `PendingConfirmation`, as SNS shows it)."""
    if subscription.kind == "queue":
        protocol, endpoint = "sqs", sqs_queue_arn(subscription.endpoint)
    elif subscription.kind == "function":
        protocol, endpoint = "lambda", function_arn(app, subscription.endpoint)
    else:
        protocol, endpoint = subscription.endpoint.split(":", 1)[0], subscription.endpoint
    return {
        "SubscriptionArn": "PendingConfirmation" if subscription.pending else subscription.arn,
        "Owner": ACCOUNT_ID,
        "Protocol": protocol,
        "Endpoint": endpoint,
        "TopicArn": sns_topic_arn(subscription.topic),
    }


async def list_subscriptions_by_topic(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _topic(call, params)
    app = call.platform.current.app_name
    return {"Subscriptions": [_listed(s, app) for s in await call.platform.topics.subscriptions(name)]}


async def list_subscriptions(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    """Every subscription of the app's topics, a page of 100 at a time (NextToken: how many were shown)."""
    app = call.platform.current.app_name
    every = [_listed(s, app) for s in await call.platform.topics.subscriptions()]
    start = optional_text(params, "NextToken") or "0"
    if not start.isdigit():
        raise _invalid("NextToken: use the NextToken a previous ListSubscriptions returned")
    first = int(start)
    result: dict[str, Any] = {"Subscriptions": every[first : first + _PAGE]}
    if first + _PAGE < len(every):
        result["NextToken"] = str(first + _PAGE)
    return result


async def get_topic_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _topic(call, params)
    found = await call.platform.store.kv.get(SNS_TOPICS_NAMESPACE, _RECORD + name)
    kept = {} if found is None else dict(loads(found.value, where="SNS topic record").get("attributes", {}))
    subscriptions = await call.platform.topics.subscriptions(name)
    pending = sum(1 for s in subscriptions if s.pending)
    attributes = {
        "TopicArn": sns_topic_arn(name),
        "Owner": ACCOUNT_ID,
        "DisplayName": "",
        "SubscriptionsConfirmed": str(len(subscriptions) - pending),
        "SubscriptionsPending": str(pending),
        "SubscriptionsDeleted": "0",
        **kept,
    }
    return {"Attributes": XmlMap(attributes)}


async def set_topic_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _topic(call, params)
    attribute = required_text(params, "AttributeName")
    if attribute not in _KEPT:
        raise _invalid(f"AttributeName: one of {', '.join(sorted(_KEPT))}, not {attribute!r}")
    value = optional_text(params, "AttributeValue") or ""
    if attribute == "SignatureVersion" and value not in ("1", "2"):
        raise _invalid("SignatureVersion: must be 1 or 2")
    found = await call.platform.store.kv.get(SNS_TOPICS_NAMESPACE, _RECORD + name)
    record = {} if found is None else dict(loads(found.value, where="SNS topic record"))
    record.pop("deleted", None)
    record["attributes"] = {**record.get("attributes", {}), attribute: value}
    await call.platform.store.kv.put(SNS_TOPICS_NAMESPACE, _RECORD + name, dumps(record))
    return {}


SERVICE = Service(
    name="sns",
    target_prefix="AmazonSNS",
    protocol="query",
    xml_namespace=NAMESPACE,
    operations={
        "CreateTopic": Operation(create_topic, "configure"),
        "ListTopics": Operation(list_topics, "read", also=("publish",)),
        "DeleteTopic": Operation(delete_topic, "configure"),
        "Publish": Operation(publish, "publish"),
        "PublishBatch": Operation(publish_batch, "publish"),
        "Subscribe": Operation(subscribe, "configure"),
        "Unsubscribe": Operation(unsubscribe, "configure"),
        "ListSubscriptionsByTopic": Operation(list_subscriptions_by_topic, "read", also=("configure",)),
        "ListSubscriptions": Operation(list_subscriptions, "read", also=("configure",)),
        "ConfirmSubscription": Operation(confirm_subscription, "configure", also=("publish",)),
        "GetSubscriptionAttributes": Operation(get_subscription_attributes, "read", also=("configure",)),
        "SetSubscriptionAttributes": Operation(set_subscription_attributes, "configure"),
        "GetTopicAttributes": Operation(get_topic_attributes, "read", also=("configure", "publish")),
        "SetTopicAttributes": Operation(set_topic_attributes, "configure"),
    },
)
