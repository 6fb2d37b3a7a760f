"""SQS's query protocol, for older clients: the form in, the JSON protocol's input out, and its output as XML.

Before botocore 1.34 (and in clients written against SQS's 2012-11-05 API by hand) SQS was spoken as a
query protocol: `Action=SendMessage&QueueUrl=...&MessageAttribute.1.Name=...` posted as a form,
answered `<SendMessageResponse><SendMessageResult>...`. The operations are the JSON protocol's
(sqs, sqs_send, ...): this module only translates, so both protocols behave alike.

- form names: lists are numbered (`AttributeName.1`), maps are numbered name/value pairs
  (`Attribute.1.Name`, `Attribute.1.Value`; `Tag.1.Key`, `Tag.1.Value`), batch entries are
  `SendMessageBatchRequestEntry.1.Id`, ... with their own nested members;
- answers: lists and maps are flattened (one `<QueueUrl>` per queue, one `<Attribute>` with `<Name>` and
  `<Value>` per attribute, one `<Message>` per message), as SQS's XML has them.

A request posted to a queue's URL (`/-/aws/000000000000/orders`) without a `QueueUrl` names that queue, as
the query protocol allowed. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"

#: Form members whose values are numbers in the JSON protocol's input.
_INTEGERS = frozenset(
    {
        "DelaySeconds",
        "MaxNumberOfMessages",
        "VisibilityTimeout",
        "WaitTimeSeconds",
        "MaxResults",
        "MaxNumberOfMessagesPerSecond",
    }
)
#: Numbered lists: the form's member name -> the input's list.
_LISTS = {
    "AttributeName": "AttributeNames",
    "MessageSystemAttributeName": "MessageSystemAttributeNames",
    "MessageAttributeName": "MessageAttributeNames",
    "TagKey": "TagKeys",
    "AWSAccountId": "AWSAccountIds",
    "ActionName": "Actions",
}
#: Numbered batch entries: the operation -> the form's entry name.
_ENTRIES = {
    "SendMessageBatch": "SendMessageBatchRequestEntry",
    "DeleteMessageBatch": "DeleteMessageBatchRequestEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchRequestEntry",
}
#: What a successful batch entry is called in the answer.
_RESULT_ENTRIES = {
    "SendMessageBatch": "SendMessageBatchResultEntry",
    "DeleteMessageBatch": "DeleteMessageBatchResultEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchResultEntry",
}


def from_query(operation: str, form: Mapping[str, str], path_queue_url: str | None = None) -> dict[str, Any]:
    """The JSON protocol's input for `operation`'s form."""
    params = _structure(form, "", operation)
    if operation in _ENTRIES:
        params["Entries"] = [_structure(form, prefix, operation) for prefix in _numbered(form, _ENTRIES[operation])]
    if "QueueUrl" not in params and path_queue_url is not None:
        params["QueueUrl"] = path_queue_url
    return params


def _numbered(form: Mapping[str, str], name: str) -> list[str]:
    """The prefixes `name.1.`, `name.2.`, ... present in the form, in order."""
    prefixes: list[str] = []
    index = 1
    while any(key.startswith(f"{name}.{index}.") or key == f"{name}.{index}" for key in form):
        prefixes.append(f"{name}.{index}.")
        index += 1
    return prefixes


def _structure(form: Mapping[str, str], prefix: str, operation: str) -> dict[str, Any]:
    """The members of the structure at `prefix`: scalars, numbered lists and maps."""
    members = {key[len(prefix) :]: value for key, value in form.items() if key.startswith(prefix)}
    params: dict[str, Any] = {}
    for key, value in members.items():
        if "." not in key:
            params[key] = int(value) if key in _INTEGERS and value.lstrip("-").isdigit() else value
    for member, target in _LISTS.items():
        values = [members[p[:-1]] for p in _numbered(members, member) if p[:-1] in members]
        if values:
            params[target] = values
    attributes = _pairs(members, "Attribute", "Name", "Value")
    if attributes:
        params["Attributes"] = attributes
    tags = _pairs(members, "Tag", "Key", "Value")
    if tags:
        params["tags" if operation == "CreateQueue" else "Tags"] = tags
    typed: dict[str, Any] = {}
    for entry in _numbered(members, "MessageAttribute"):
        name = members.get(f"{entry}Name")
        if name is None:
            continue
        typed[name] = {
            field: members[f"{entry}Value.{field}"]
            for field in ("DataType", "StringValue", "BinaryValue")
            if f"{entry}Value.{field}" in members
        }
    if typed:
        params["MessageAttributes"] = typed
    return params


def _pairs(members: Mapping[str, str], name: str, key: str, value: str) -> dict[str, str]:
    return {
        members[f"{prefix}{key}"]: members.get(f"{prefix}{value}", "")
        for prefix in _numbered(members, name)
        if f"{prefix}{key}" in members
    }


def to_xml(operation: str, document: Mapping[str, Any]) -> str:
    """The inside of `<OperationResult>` for the JSON protocol's output `document`."""
    return "".join(_member(operation, name, value) for name, value in document.items())


def _member(operation: str, name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "QueueUrls":
        return "".join(_element("QueueUrl", url) for url in value)
    if name == "Attributes":
        return "".join(f"<Attribute>{_element('Name', k)}{_element('Value', v)}</Attribute>" for k, v in value.items())
    if name == "Tags":
        return "".join(f"<Tag>{_element('Key', k)}{_element('Value', v)}</Tag>" for k, v in value.items())
    if name == "MessageAttributes":
        return "".join(
            f"<MessageAttribute>{_element('Name', k)}<Value>{_fields(v)}</Value></MessageAttribute>"
            for k, v in value.items()
        )
    if name == "Messages":
        return "".join(f"<Message>{to_xml(operation, message)}</Message>" for message in value)
    if name == "Successful":
        entry = _RESULT_ENTRIES.get(operation, "Entry")
        return "".join(f"<{entry}>{_fields(item)}</{entry}>" for item in value)
    if name == "Failed":
        return "".join(f"<BatchResultErrorEntry>{_fields(item)}</BatchResultErrorEntry>" for item in value)
    if name == "Results":
        return "".join(
            f"<ListMessageMoveTasksResultEntry>{_fields(r)}</ListMessageMoveTasksResultEntry>" for r in value
        )
    return _element(name, value)


def _fields(document: Mapping[str, Any]) -> str:
    return "".join(_element(name, value) for name, value in document.items() if value is not None)


def _element(name: str, value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"<{name}>{escape(text)}</{name}>"
