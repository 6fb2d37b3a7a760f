"""SQS's queue tags (TagQueue, UntagQueue, ListQueueTags, CreateQueue's `tags`) and permissions
(AddPermission, RemovePermission).

Tags are kept per queue in the app's `SQS_QUEUES_NAMESPACE` (`tags/<queue>`) and shown back; nothing
reads them (there is no billing to allocate). A permission is a statement of the queue's `Policy`
attribute, labelled, as SQS adds it; like the rest of the policy it is kept, not enforced (docs/aws.md).
"""

from __future__ import annotations

from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.aws import sqs
from triggerfish.aws.endpoint import AwsCall, Operation
from triggerfish.aws.protocol import optional_list, optional_map, required_text
from triggerfish.identity import sqs_queue_arn
from triggerfish.names import SQS_QUEUES_NAMESPACE

#: SQS's limits on tags.
MAX_TAGS = 50
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
_RECORD = "tags/"
_POLICY_VERSION = "2012-10-17"


async def _tags(call: AwsCall, name: str) -> dict[str, str]:
    found = await call.platform.store.kv.get(SQS_QUEUES_NAMESPACE, _RECORD + name)
    return {} if found is None else dict(loads(found.value, where=f"tags of queue {name!r}"))


async def _save(call: AwsCall, name: str, tags: dict[str, str]) -> None:
    await call.platform.store.kv.put(SQS_QUEUES_NAMESPACE, _RECORD + name, dumps(tags))


def _checked(given: dict[str, Any], current: dict[str, str]) -> dict[str, str]:
    tags = dict(current)
    for key, value in given.items():
        if not isinstance(value, str) or not 1 <= len(key) <= MAX_KEY_CHARS or len(value) > MAX_VALUE_CHARS:
            raise sqs.sqs_error(
                "InvalidParameterValue",
                f"Tag {key!r}: a key is 1 to {MAX_KEY_CHARS} characters and a value a string of at most"
                f" {MAX_VALUE_CHARS}",
            )
        if key.lower().startswith("aws:"):
            raise sqs.sqs_error("InvalidParameterValue", f"Tag {key!r}: the prefix aws: is reserved for AWS")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise sqs.sqs_error(
            "InvalidParameterValue", f"Too many tags: a queue has at most {MAX_TAGS}, this would make {len(tags)}"
        )
    return tags


async def create_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    """sqs.create_queue, with CreateQueue's `tags` kept for a queue it makes (an existing queue keeps its own)."""
    name = required_text(params, "QueueName")
    given = optional_map(params, "tags")
    tags = _checked(given, {})
    existed = name in await sqs.queue_names(call)
    answer = await sqs.create_queue(call, params)
    if not existed:
        await _save(call, name, tags)
    return answer


async def tag_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await sqs.queue_from(call, params)
    await _save(call, name, _checked(optional_map(params, "Tags"), await _tags(call, name)))
    return {}


async def untag_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await sqs.queue_from(call, params)
    tags = await _tags(call, name)
    for key in optional_list(params, "TagKeys"):
        tags.pop(str(key), None)
    await _save(call, name, tags)
    return {}


async def list_queue_tags(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    tags = await _tags(call, await sqs.queue_from(call, params))
    return {"Tags": tags} if tags else {}


async def _policy(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    shown = await sqs.get_queue_attributes(call, {"QueueUrl": params.get("QueueUrl"), "AttributeNames": ["Policy"]})
    text = shown.get("Attributes", {}).get("Policy")
    return {"Version": _POLICY_VERSION, "Statement": []} if not text else dict(loads(text.encode(), where="Policy"))


async def _set_policy(call: AwsCall, params: dict[str, Any], policy: dict[str, Any]) -> None:
    text = dumps(policy).decode("utf-8") if policy["Statement"] else ""
    await sqs.set_queue_attributes(call, {"QueueUrl": params.get("QueueUrl"), "Attributes": {"Policy": text}})


async def add_permission(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await sqs.queue_from(call, params)
    label = required_text(params, "Label")
    accounts = [str(a) for a in optional_list(params, "AWSAccountIds")]
    actions = [str(a) for a in optional_list(params, "Actions")]
    if not accounts or not actions:
        raise sqs.sqs_error("MissingParameter", "AddPermission needs AWSAccountIds and Actions")
    policy = await _policy(call, params)
    if any(statement.get("Sid") == label for statement in policy["Statement"]):
        raise sqs.sqs_error(
            "InvalidParameterValue", f"Value {label} for parameter Label is invalid. Reason: Already exists."
        )
    policy["Statement"].append(
        {
            "Sid": label,
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{account}:root" for account in accounts]},
            "Action": [f"SQS:{action}" for action in actions],
            "Resource": sqs_queue_arn(name),
        }
    )
    await _set_policy(call, params, policy)
    return {}


async def remove_permission(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    await sqs.queue_from(call, params)
    label = required_text(params, "Label")
    policy = await _policy(call, params)
    kept = [statement for statement in policy["Statement"] if statement.get("Sid") != label]
    if len(kept) == len(policy["Statement"]):
        raise sqs.sqs_error(
            "InvalidParameterValue", f"Value {label} for parameter Label is invalid. Reason: can't find label."
        )
    await _set_policy(call, params, {**policy, "Statement": kept})
    return {}


#: Joins sqs.OPERATIONS (services.py); its CreateQueue takes the place of sqs's, adding `tags`.
OPERATIONS = {
    "CreateQueue": Operation(create_queue, "configure"),
    "TagQueue": Operation(tag_queue, "configure"),
    "UntagQueue": Operation(untag_queue, "configure"),
    "ListQueueTags": Operation(list_queue_tags, "read"),
    "AddPermission": Operation(add_permission, "configure"),
    "RemovePermission": Operation(remove_permission, "configure"),
}
