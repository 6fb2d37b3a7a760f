"""`context.table("orders")`: a table for handler code, plain Python values in and out.

    orders = context.table("orders")
    orders.put({"id": "o-1", "status": "NEW", "total": 42}, condition="attribute_not_exists(id)")
    orders.update({"id": "o-1"}, set={"status": "PAID"}, add={"payments": 1},
                  publish=[context.event("order.paid", {"id": "o-1"})])   # published with the write, or not at all
    page = orders.query("customer = :c AND created > :t", values={":c": "ada", ":t": 1700000000}, limit=20)
    for item in page.items: ...
    more = orders.query(..., start=page.next) if page.next else None

Each call is one DynamoDB operation (`triggerfish.tables.api`) sent to the platform as a
`table` platform call; values go as DynamoDB's typed JSON and come back as Python:
numbers as int (whole) or float, binary as bytes, sets as sets, NULL as None. Expressions
are DynamoDB's, with `values` given as Python values and `names` as DynamoDB's
`#placeholders`. Errors are the table errors (`ConditionFailedError`,
`TransactionCanceledError` with `reasons`, `ValidationError`, `TableNotFoundError`).
Runs in the worker: imports only what a worker has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from triggerfish.tables.errors import (
    CancellationReason,
    ConditionFailedError,
    TableError,
    TableExistsError,
    TableNotFoundError,
    TransactionCanceledError,
    ValidationError,
)
from triggerfish.tables.values import from_python, item_from_python, item_to_python

Call = Callable[[str, dict[str, Any]], Any]
_ERRORS: dict[str, type[TableError]] = {
    "ValidationException": ValidationError,
    "ResourceNotFoundException": TableNotFoundError,
    "ResourceInUseException": TableExistsError,
}


@dataclass(frozen=True, slots=True)
class Page:
    """A query's or scan's items, and `next`: the key to pass as `start` for the next page (None: no more)."""

    items: list[dict[str, Any]]
    next: dict[str, Any] | None
    scanned: int


class Table:
    """One table, for a handler. See the module docstring."""

    def __init__(self, name: str, call: Call) -> None:
        self.name = name
        self._call = call

    def __repr__(self) -> str:
        return f"<Table {self.name}>"

    # --- one item ---------------------------------------------------------------------------------

    def get(
        self, key: Mapping[str, Any], *, projection: str | None = None, names: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The item with this key, or None."""
        params = self._params(names=names, projection=projection)
        answer = self._run("GetItem", {**params, "Key": item_from_python(key, "key")})
        return None if "Item" not in answer else item_to_python(answer["Item"])

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        publish: Sequence[Any] = (),
    ) -> dict[str, Any] | None:
        """Write the whole item; returns the item it replaced (None: it is new). ConditionFailedError if `condition`
        does not hold (then nothing is written, nor published)."""
        params = self._params(names=names, values=values, condition=condition)
        params.update(Item=item_from_python(item), ReturnValues="ALL_OLD")
        answer = self._run("PutItem", params, publish)
        return item_to_python(answer["Attributes"]) if "Attributes" in answer else None

    def update(
        self,
        key: Mapping[str, Any],
        expression: str | None = None,
        *,
        set: Mapping[str, Any] | None = None,
        add: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        publish: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """Change the item (made from its key when missing); returns it as it is now.

        Either a DynamoDB `expression` ("SET #s = :s ADD n :one") with `names`/`values`, or the
        Python form: `set` (attribute to value), `add` (numbers added, sets merged) and `remove`
        (attribute names), which become such an expression.
        """
        names, values = dict(names or {}), dict(values or {})
        if expression is None:
            expression = _expression(set or {}, add or {}, remove, names, values)
        elif set or add or remove:
            raise ValidationError("update takes an expression or set/add/remove, not both")
        params = self._params(names=names, values=values, condition=condition)
        if expression:
            params["UpdateExpression"] = expression
        params.update(Key=item_from_python(key, "key"), ReturnValues="ALL_NEW")
        answer = self._run("UpdateItem", params, publish)
        return item_to_python(answer.get("Attributes", {}))

    def delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        publish: Sequence[Any] = (),
    ) -> dict[str, Any] | None:
        """Delete the item; returns it (None: there was none)."""
        params = self._params(names=names, values=values, condition=condition)
        params.update(Key=item_from_python(key, "key"), ReturnValues="ALL_OLD")
        answer = self._run("DeleteItem", params, publish)
        return item_to_python(answer["Attributes"]) if "Attributes" in answer else None

    # --- many items -------------------------------------------------------------------------------

    def query(
        self,
        key_condition: str,
        *,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        filter: str | None = None,
        projection: str | None = None,
        limit: int | None = None,
        forward: bool = True,
        start: Mapping[str, Any] | None = None,
    ) -> Page:
        """One partition's items in sort key order (`forward=False`: reversed), a page at a time."""
        params = self._params(names=names, values=values, projection=projection)
        params.update(KeyConditionExpression=key_condition, ScanIndexForward=forward)
        return self._page("Query", params, filter, limit, start)

    def scan(
        self,
        *,
        filter: str | None = None,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        projection: str | None = None,
        limit: int | None = None,
        start: Mapping[str, Any] | None = None,
    ) -> Page:
        """Every item (matching `filter`), a page at a time."""
        return self._page("Scan", self._params(names=names, values=values, projection=projection), filter, limit, start)

    def batch_get(self, keys: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The items of these keys that exist (up to 100 keys)."""
        request = {self.name: {"Keys": [item_from_python(key, "key") for key in keys]}}
        answer = self._run("BatchGetItem", {"RequestItems": request})
        return [item_to_python(item) for item in answer["Responses"].get(self.name, [])]

    def batch_write(
        self, *, put: Iterable[Mapping[str, Any]] = (), delete: Iterable[Mapping[str, Any]] = (),
        publish: Sequence[Any] = (),
    ) -> None:  # fmt: skip
        """Put and delete up to 25 items together (one transaction here; no conditions)."""
        entries = [{"PutRequest": {"Item": item_from_python(item)}} for item in put]
        entries += [{"DeleteRequest": {"Key": item_from_python(key, "key")}} for key in delete]
        self._run("BatchWriteItem", {"RequestItems": {self.name: entries}}, publish)

    # --- transactions -----------------------------------------------------------------------------

    def transact(self, actions: Sequence[Mapping[str, Any]], *, publish: Sequence[Any] = ()) -> None:
        """Several actions, on this and other tables, all or none (TransactionCanceledError with `reasons`).

        Build them with `put_action`, `update_action`, `delete_action` and `check_action` of any table.
        """
        self._run("TransactWriteItems", {"TransactItems": list(actions)}, publish)

    def put_action(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = self._params(names=names, values=values, condition=condition)
        return {"Put": {**params, "TableName": self.name, "Item": item_from_python(item)}}

    def update_action(
        self, key: Mapping[str, Any], *, set: Mapping[str, Any] | None = None, add: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (), condition: str | None = None, names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        names, values = dict(names or {}), dict(values or {})
        expression = _expression(set or {}, add or {}, remove, names, values)
        params = self._params(names=names, values=values, condition=condition)
        return {"Update": {**params, "TableName": self.name, "Key": item_from_python(key, "key"),
                           "UpdateExpression": expression}}  # fmt: skip

    def delete_action(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = self._params(names=names, values=values, condition=condition)
        return {"Delete": {**params, "TableName": self.name, "Key": item_from_python(key, "key")}}

    def check_action(
        self,
        key: Mapping[str, Any],
        condition: str,
        *,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = self._params(names=names, values=values, condition=condition)
        return {"ConditionCheck": {**params, "TableName": self.name, "Key": item_from_python(key, "key")}}

    # --- plumbing ---------------------------------------------------------------------------------

    def _params(
        self, *, names: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None,
        condition: str | None = None, projection: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        params: dict[str, Any] = {"TableName": self.name}
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        if values:
            params["ExpressionAttributeValues"] = {k: from_python(v, f"values[{k!r}]") for k, v in values.items()}
        if condition is not None:
            params["ConditionExpression"] = condition
        if projection is not None:
            params["ProjectionExpression"] = projection
        return params

    def _page(
        self, operation: str, params: dict[str, Any], filter: str | None, limit: int | None,
        start: Mapping[str, Any] | None,
    ) -> Page:  # fmt: skip
        if filter is not None:
            params["FilterExpression"] = filter
        if limit is not None:
            params["Limit"] = limit
        if start is not None:
            params["ExclusiveStartKey"] = item_from_python(start, "start")
        answer = self._run(operation, params)
        last = answer.get("LastEvaluatedKey")
        return Page(
            [item_to_python(item) for item in answer.get("Items", [])],
            None if last is None else item_to_python(last),
            int(answer.get("ScannedCount", 0)),
        )

    def _run(self, operation: str, params: dict[str, Any], publish: Sequence[Any] = ()) -> dict[str, Any]:
        outbox = [_outbox_entry(entry) for entry in publish]
        answer = self._call("table", {"operation": operation, "params": params, "outbox": outbox})
        if "error" in answer:
            raise _error(answer["error"])
        result: dict[str, Any] = answer["result"]
        return result


def _expression(
    set: Mapping[str, Any], add: Mapping[str, Any], remove: Iterable[str], names: dict[str, str],
    values: dict[str, Any],
) -> str:  # fmt: skip
    """An UpdateExpression from the Python form, every name and value a placeholder (no reserved-word trouble)."""
    clauses: list[str] = []
    counter = len(names) + len(values)

    def placeholder(name: str) -> str:
        nonlocal counter
        counter += 1
        names[f"#u{counter}"] = name
        return f"#u{counter}"

    def value(v: Any) -> str:
        nonlocal counter
        counter += 1
        values[f":u{counter}"] = v
        return f":u{counter}"

    if set:
        clauses.append("SET " + ", ".join(f"{placeholder(k)} = {value(v)}" for k, v in set.items()))
    removed = list(remove)
    if removed:
        clauses.append("REMOVE " + ", ".join(placeholder(k) for k in removed))
    if add:
        clauses.append("ADD " + ", ".join(f"{placeholder(k)} {value(v)}" for k, v in add.items()))
    return " ".join(clauses)


def _outbox_entry(entry: Any) -> dict[str, Any]:
    """`publish=` entries: a CloudEvent (from `context.event`, to the default bus) or a (bus, event) pair."""
    if isinstance(entry, tuple) and len(entry) == 2:
        return {"bus": entry[0], "event": entry[1]}
    if isinstance(entry, Mapping):
        return {"bus": "default", "event": dict(entry)}
    raise ValidationError(f"publish= takes events from context.event(...), or (bus, event) pairs, not {entry!r}")


def _error(error: Mapping[str, Any]) -> TableError:
    code, message = str(error.get("code")), str(error.get("message"))
    if code == "ConditionalCheckFailedException":
        item = error.get("item")
        return ConditionFailedError(message, None if item is None else item_to_python(item))
    if code == "TransactionCanceledException":
        reasons = [
            CancellationReason(r.get("code", "None"), r.get("message"), _python_or_none(r.get("item")))
            for r in error.get("reasons", [])
        ]
        return TransactionCanceledError(reasons)
    return _ERRORS.get(code, TableError)(message)


def _python_or_none(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if item is None else item_to_python(item)
