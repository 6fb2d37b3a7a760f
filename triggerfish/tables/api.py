"""DynamoDB's operations on DynamoDB's JSON: what the AWS endpoint serves and what `context.table` calls.

    document = await run(tables, "PutItem", {"TableName": "orders", "Item": {...}, "ConditionExpression": ...})

Each operation takes the request as DynamoDB's API defines it (typed attribute values,
expressions with their placeholders) and answers DynamoDB's response document, or raises
a TableError whose `code` is DynamoDB's. The AWS endpoint (`triggerfish.aws.dynamodb`)
wraps this in the wire protocol; handlers reach it through a platform call
(`triggerfish.tables.client`). The parts of DynamoDB not served here (indexes, the
legacy non-expression parameters, PartiQL, TTL, backups) are refused with a
ValidationError naming what to use instead; docs/tables.md lists them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from triggerfish.changes.records import table_stream_arn
from triggerfish.identity import ACCOUNT_ID, REGION
from triggerfish.tables.errors import ValidationError
from triggerfish.tables.expressions import (
    Condition,
    Inputs,
    Path,
    Update,
    parse_condition,
    parse_key_condition,
    parse_projection,
    parse_update,
)
from triggerfish.tables.schema import DEFAULT_STREAM_VIEW_TYPE, KeyAttribute, TableSchema, check_table_name
from triggerfish.tables.table import Outbox, Tables, TransactItem
from triggerfish.tables.values import Item, check_item

Handler = Callable[[Tables, dict[str, Any], Outbox], Awaitable[dict[str, Any]]]
_LEGACY = {
    "Expected": "ConditionExpression",
    "AttributeUpdates": "UpdateExpression",
    "KeyConditions": "KeyConditionExpression",
    "QueryFilter": "FilterExpression",
    "ScanFilter": "FilterExpression",
    "AttributesToGet": "ProjectionExpression",
    "ConditionalOperator": "ConditionExpression",
}


async def run(tables: Tables, operation: str, params: Mapping[str, Any], *, outbox: Outbox = ()) -> dict[str, Any]:
    """Carry out one DynamoDB operation; raises TableError (ValidationError for an unknown operation)."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise ValidationError(
            f"DynamoDB operation {operation!r} is not served here; the operations are {', '.join(sorted(OPERATIONS))}"
        )
    if not isinstance(params, Mapping):
        raise ValidationError(f"{operation} takes an object of parameters, not {type(params).__name__}")
    for legacy, instead in _LEGACY.items():
        if legacy in params:
            raise ValidationError(f"{legacy} is a legacy parameter not served here; use {instead}")
    return await handler(tables, dict(params), outbox)


# --- parameters -------------------------------------------------------------------------------


def _table(params: Mapping[str, Any]) -> str:
    if "TableName" not in params:
        raise ValidationError("1 validation error detected: Value null at 'tableName' failed to satisfy constraint:"
                              " Member must not be null")  # fmt: skip
    return check_table_name(params["TableName"])


def _inputs(params: Mapping[str, Any]) -> Inputs:
    names = params.get("ExpressionAttributeNames") or {}
    values = params.get("ExpressionAttributeValues") or {}
    if not isinstance(names, Mapping) or not isinstance(values, Mapping):
        raise ValidationError("ExpressionAttributeNames and ExpressionAttributeValues are objects")
    if "ExpressionAttributeValues" in params and not values:
        raise ValidationError("ExpressionAttributeValues must not be empty")
    if "ExpressionAttributeNames" in params and not names:
        raise ValidationError("ExpressionAttributeNames must not be empty")
    return Inputs(names=dict(names), values=dict(values))


def _condition(params: Mapping[str, Any], inputs: Inputs, name: str = "ConditionExpression") -> Condition | None:
    text = params.get(name)
    return None if text is None else parse_condition(text, inputs, name)


def _projection(params: Mapping[str, Any], inputs: Inputs) -> list[Path] | None:
    text = params.get("ProjectionExpression")
    return None if text is None else parse_projection(text, inputs)


def _key(params: Mapping[str, Any]) -> Item:
    if "Key" not in params:
        raise ValidationError("1 validation error detected: Value null at 'key' failed to satisfy constraint: Member"
                              " must not be null")  # fmt: skip
    return check_item(params["Key"], "Key")


def _choice(params: Mapping[str, Any], name: str, allowed: Sequence[str], default: str) -> str:
    value = params.get(name, default)
    if value not in allowed:
        raise ValidationError(
            f"1 validation error detected: Value {value!r} at '{name[0].lower() + name[1:]}' failed to satisfy"
            f" constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return str(value)


def _limit(params: Mapping[str, Any]) -> int | None:
    limit = params.get("Limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have"
            " value greater than or equal to 1"
        )
    return limit


def _no_index(params: Mapping[str, Any]) -> None:
    if params.get("IndexName") is not None:
        raise ValidationError(
            f"IndexName {params['IndexName']!r}: secondary indexes are not served here (docs/tables.md); query the"
            " table, or keep a second table written in the same transaction"
        )


def _on_failure(params: Mapping[str, Any]) -> bool:
    return _choice(params, "ReturnValuesOnConditionCheckFailure", ("ALL_OLD", "NONE"), "NONE") == "ALL_OLD"


# --- tables -------------------------------------------------------------------------------------


def describe(schema: TableSchema, count: int | None = None) -> dict[str, Any]:
    """DescribeTable's `Table`: ACTIVE at once, on demand, with its stream always on."""
    keys = [schema.partition_key] + ([] if schema.sort_key is None else [schema.sort_key])
    arn = table_stream_arn(schema.name, schema.created_at)
    return {
        "TableName": schema.name,
        "TableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{schema.name}",
        "TableId": schema.name,
        "TableStatus": "ACTIVE",
        "CreationDateTime": schema.created_at,
        "KeySchema": [
            {"AttributeName": key.name, "KeyType": "HASH" if index == 0 else "RANGE"} for index, key in enumerate(keys)
        ],
        "AttributeDefinitions": [{"AttributeName": key.name, "AttributeType": key.type} for key in keys],
        "ItemCount": count or 0,
        "TableSizeBytes": 0,
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": schema.stream_view_type},
        "LatestStreamArn": arn,
        "LatestStreamLabel": arn.rsplit("/", 1)[-1],
        "DeletionProtectionEnabled": False,
    }


def schema_of(params: Mapping[str, Any]) -> TableSchema:
    """The table a CreateTable request describes."""
    name = _table(params)
    for unsupported in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if params.get(unsupported):
            raise ValidationError(f"{unsupported} are not served here (docs/tables.md); create the table without them")
    key_schema = params.get("KeySchema")
    definitions = params.get("AttributeDefinitions")
    if not isinstance(key_schema, list) or not 1 <= len(key_schema) <= 2:
        raise ValidationError("KeySchema must name a HASH key and, optionally, a RANGE key")
    if not isinstance(definitions, list):
        raise ValidationError("AttributeDefinitions must list the key attributes and their types")
    types = {d.get("AttributeName"): d.get("AttributeType") for d in definitions if isinstance(d, Mapping)}
    found: dict[str, KeyAttribute] = {}
    for entry in key_schema:
        if not isinstance(entry, Mapping) or entry.get("KeyType") not in ("HASH", "RANGE"):
            raise ValidationError("each KeySchema entry has an AttributeName and a KeyType of HASH or RANGE")
        attribute = entry.get("AttributeName")
        if attribute not in types:
            raise ValidationError(
                "One or more parameter values were invalid: Some index key attributes are not defined in"
                f" AttributeDefinitions. Keys: [{attribute}], AttributeDefinitions: {sorted(map(str, types))}"
            )
        found[entry["KeyType"]] = KeyAttribute(str(attribute), str(types[attribute]))
    if "HASH" not in found:
        raise ValidationError("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    if len(types) != len(found):
        raise ValidationError(
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match"
            " number of attributes defined in AttributeDefinitions"
        )
    stream = params.get("StreamSpecification") or {}
    view = stream.get("StreamViewType", DEFAULT_STREAM_VIEW_TYPE) if isinstance(stream, Mapping) else None
    return TableSchema(name, found["HASH"], found.get("RANGE"), view or DEFAULT_STREAM_VIEW_TYPE)


async def create_table(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    return {"TableDescription": describe(await tables.create(schema_of(params)))}


async def describe_table(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name = _table(params)
    return {"Table": describe(await tables.describe(name), await tables.count(name))}


async def list_tables(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    names = await tables.names()
    start = params.get("ExclusiveStartTableName")
    if start is not None:
        names = [name for name in names if name > start]
    limit = params.get("Limit") or 100
    answer: dict[str, Any] = {"TableNames": names[:limit]}
    if len(names) > limit:
        answer["LastEvaluatedTableName"] = names[limit - 1]
    return answer


async def delete_table(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    schema = await tables.delete_table(_table(params))
    return {"TableDescription": {**describe(schema), "TableStatus": "DELETING"}}


# --- items --------------------------------------------------------------------------------------


async def put_item(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name, inputs = _table(params), _inputs(params)
    item = check_item(params.get("Item"), "Item")
    condition = _condition(params, inputs)
    returns = _choice(params, "ReturnValues", ("NONE", "ALL_OLD"), "NONE")
    inputs.check_unused()
    old = await tables.put(name, item, condition=condition, outbox=outbox, return_old_on_failure=_on_failure(params))
    return {"Attributes": old} if returns == "ALL_OLD" and old else {}


async def get_item(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name, inputs = _table(params), _inputs(params)
    projection = _projection(params, inputs)
    inputs.check_unused()
    item = await tables.get(name, _key(params), projection=projection)
    return {} if item is None else {"Item": item}


async def update_item(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name, inputs = _table(params), _inputs(params)
    text = params.get("UpdateExpression")
    update = None if text is None else parse_update(text, inputs)
    condition = _condition(params, inputs)
    returns = _choice(params, "ReturnValues", ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"), "NONE")
    inputs.check_unused()
    old, new = await tables.update(
        name, _key(params), update, condition=condition, outbox=outbox, return_old_on_failure=_on_failure(params)
    )
    if returns == "NONE":
        return {}
    if returns == "ALL_OLD":
        return {"Attributes": old} if old else {}
    if returns == "ALL_NEW":
        return {"Attributes": new}
    touched = _touched(update)
    source = (old or {}) if returns == "UPDATED_OLD" else new
    attributes = {k: v for k, v in source.items() if k in touched}
    return {"Attributes": attributes} if attributes else {}


def _touched(update: Update | None) -> set[str]:
    return set() if update is None else {str(path.elements[0]) for path in update.paths()}


async def delete_item(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name, inputs = _table(params), _inputs(params)
    condition = _condition(params, inputs)
    returns = _choice(params, "ReturnValues", ("NONE", "ALL_OLD"), "NONE")
    inputs.check_unused()
    old = await tables.delete(
        name, _key(params), condition=condition, outbox=outbox, return_old_on_failure=_on_failure(params)
    )
    return {"Attributes": old} if returns == "ALL_OLD" and old else {}


# --- reading many -------------------------------------------------------------------------------


def _select(params: Mapping[str, Any]) -> str:
    select = _choice(
        params, "Select", ("ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT"),
        "SPECIFIC_ATTRIBUTES" if params.get("ProjectionExpression") else "ALL_ATTRIBUTES",
    )  # fmt: skip
    if select == "ALL_PROJECTED_ATTRIBUTES":
        raise ValidationError("ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName")
    if select == "SPECIFIC_ATTRIBUTES" and not params.get("ProjectionExpression"):
        raise ValidationError("Select SPECIFIC_ATTRIBUTES needs a ProjectionExpression")
    if select in ("ALL_ATTRIBUTES", "COUNT") and params.get("ProjectionExpression"):
        raise ValidationError(f"Cannot specify the ProjectionExpression when choosing to get {select}")
    return select


def _page_answer(items: list[Item], last_key: Item | None, scanned: int, select: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"Count": len(items), "ScannedCount": scanned}
    if select != "COUNT":
        answer["Items"] = items
    if last_key is not None:
        answer["LastEvaluatedKey"] = last_key
    return answer


async def query(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name, inputs = _table(params), _inputs(params)
    _no_index(params)
    select = _select(params)
    schema = await tables.schema(name)
    if "KeyConditionExpression" not in params:
        raise ValidationError("Either the KeyConditions or KeyConditionExpression parameter must be specified")
    sort_name = None if schema.sort_key is None else schema.sort_key.name
    condition = parse_key_condition(params["KeyConditionExpression"], inputs, schema.partition_key.name, sort_name)
    filter = _condition(params, inputs, "FilterExpression")
    projection = _projection(params, inputs)
    inputs.check_unused()
    forward = params.get("ScanIndexForward", True)
    if not isinstance(forward, bool):
        raise ValidationError(f"ScanIndexForward is true or false, not {forward!r}")
    start = params.get("ExclusiveStartKey")
    page = await tables.query(
        name, condition, forward=forward, limit=_limit(params),
        start_key=None if start is None else check_item(start, "ExclusiveStartKey"),
        filter=filter, projection=projection,
    )  # fmt: skip
    return _page_answer(page.items, page.last_key, page.scanned, select)


async def scan(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    name, inputs = _table(params), _inputs(params)
    _no_index(params)
    select = _select(params)
    filter = _condition(params, inputs, "FilterExpression")
    projection = _projection(params, inputs)
    inputs.check_unused()
    segment = None
    if "TotalSegments" in params or "Segment" in params:
        total, number = params.get("TotalSegments"), params.get("Segment")
        if not isinstance(total, int) or not isinstance(number, int) or not 0 <= number < total <= 1_000_000:
            raise ValidationError("Segment and TotalSegments go together, with 0 <= Segment < TotalSegments")
        segment = (number, total)
    start = params.get("ExclusiveStartKey")
    page = await tables.scan(
        name, limit=_limit(params), start_key=None if start is None else check_item(start, "ExclusiveStartKey"),
        filter=filter, projection=projection, segment=segment,
    )  # fmt: skip
    return _page_answer(page.items, page.last_key, page.scanned, select)


# --- batches and transactions -------------------------------------------------------------------


def _request_items(params: Mapping[str, Any]) -> dict[str, Any]:
    requests = params.get("RequestItems")
    if not isinstance(requests, Mapping) or not requests:
        raise ValidationError("RequestItems must name at least one table")
    return dict(requests)


async def batch_get_item(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    requests: dict[str, list[Item]] = {}
    projections: dict[str, list[Path]] = {}
    for name, body in _request_items(params).items():
        check_table_name(name)
        if not isinstance(body, Mapping) or not isinstance(body.get("Keys"), list) or not body["Keys"]:
            raise ValidationError(f"RequestItems.{name} lists its Keys")
        inputs = _inputs(body)
        projection = _projection(body, inputs)
        inputs.check_unused()
        if projection is not None:
            projections[name] = projection
        requests[name] = [check_item(key, "Key") for key in body["Keys"]]
    found = await tables.batch_get(requests, projection=projections)
    return {"Responses": found, "UnprocessedKeys": {}}


async def batch_write_item(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    writes: list[tuple[str, Literal["put", "delete"], Item]] = []
    for name, entries in _request_items(params).items():
        check_table_name(name)
        if not isinstance(entries, list) or not entries:
            raise ValidationError(f"RequestItems.{name} lists its PutRequest and DeleteRequest entries")
        for entry in entries:
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ValidationError("each write request is one of PutRequest or DeleteRequest")
            if "PutRequest" in entry:
                writes.append((name, "put", check_item((entry["PutRequest"] or {}).get("Item"), "Item")))
            elif "DeleteRequest" in entry:
                writes.append((name, "delete", check_item((entry["DeleteRequest"] or {}).get("Key"), "Key")))
            else:
                raise ValidationError("each write request is one of PutRequest or DeleteRequest")
    await tables.batch_write(writes, outbox=outbox)
    return {"UnprocessedItems": {}}


async def transact_write_items(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    entries = params.get("TransactItems")
    if not isinstance(entries, list):
        raise ValidationError("TransactItems lists the actions: Put, Update, Delete or ConditionCheck")
    actions: list[TransactItem] = []
    kinds: dict[str, Literal["put", "update", "delete", "check"]] = {
        "Put": "put", "Update": "update", "Delete": "delete", "ConditionCheck": "check",
    }  # fmt: skip
    for entry in entries:
        if not isinstance(entry, Mapping) or len(entry) != 1 or next(iter(entry)) not in kinds:
            raise ValidationError("each of TransactItems is one of Put, Update, Delete or ConditionCheck")
        [(kind, body)] = entry.items()
        if not isinstance(body, Mapping):
            raise ValidationError(f"TransactItems: {kind} takes an object")
        inputs = _inputs(body)
        condition = _condition(body, inputs)
        update = None
        if kind == "Update":
            if "UpdateExpression" not in body:
                raise ValidationError("an Update of TransactItems needs an UpdateExpression")
            update = parse_update(body["UpdateExpression"], inputs)
        if kind == "ConditionCheck" and condition is None:
            raise ValidationError("a ConditionCheck of TransactItems needs a ConditionExpression")
        inputs.check_unused()
        actions.append(
            TransactItem(
                kinds[kind],
                _table(body),
                item=check_item(body.get("Item"), "Item") if kind == "Put" else None,
                key=None if kind == "Put" else _key(body),
                update=update,
                condition=condition,
                return_old_on_failure=_on_failure(body),
            )
        )
    await tables.transact_write(actions, outbox=outbox)
    return {}


async def transact_get_items(tables: Tables, params: dict[str, Any], outbox: Outbox) -> dict[str, Any]:
    entries = params.get("TransactItems")
    if not isinstance(entries, list) or not entries:
        raise ValidationError("TransactItems lists the Get actions")
    requests: list[tuple[str, Item, Sequence[Path] | None]] = []
    for entry in entries:
        body = entry.get("Get") if isinstance(entry, Mapping) else None
        if not isinstance(body, Mapping):
            raise ValidationError("each of TransactItems of TransactGetItems is a Get")
        inputs = _inputs(body)
        projection = _projection(body, inputs)
        inputs.check_unused()
        requests.append((_table(body), _key(body), projection))
    items = await tables.transact_get(requests)
    return {"Responses": [{} if item is None else {"Item": item} for item in items]}


OPERATIONS: dict[str, Handler] = {
    "CreateTable": create_table,
    "DescribeTable": describe_table,
    "ListTables": list_tables,
    "DeleteTable": delete_table,
    "PutItem": put_item,
    "GetItem": get_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "Query": query,
    "Scan": scan,
    "BatchGetItem": batch_get_item,
    "BatchWriteItem": batch_write_item,
    "TransactWriteItems": transact_write_items,
    "TransactGetItems": transact_get_items,
}

#: Operations that only read: what a read-only key may call.
READ_OPERATIONS = frozenset({"DescribeTable", "ListTables", "GetItem", "Query", "Scan", "BatchGetItem",
                             "TransactGetItems"})  # fmt: skip

__all__ = ["OPERATIONS", "READ_OPERATIONS", "describe", "run", "schema_of"]
