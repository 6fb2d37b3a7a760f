"""DynamoDB's JSON protocol (`X-Amz-Target: DynamoDB_20120810.<Operation>`) over the app's tables.

The operations themselves are `triggerfish.tables.api` (shared with `context.table`);
here a table error becomes DynamoDB's error document: `__type` is the error code
botocore maps to its exception classes (`ConditionalCheckFailedException`,
`ResourceNotFoundException`, `ValidationException`, `TransactionCanceledException`
with `CancellationReasons`), and a failed condition's old item rides along as `Item`
when ReturnValuesOnConditionCheckFailure asked for it. Reads need the `read` action
(or `publish`); item writes `publish`; making and dropping tables `configure`.
"""

from __future__ import annotations

from typing import Any

from triggerfish.aws.endpoint import AwsCall, Handler, Operation, Service
from triggerfish.aws.protocol import AwsError
from triggerfish.tables import api
from triggerfish.tables.errors import ConditionFailedError, TableError, TransactionCanceledError
from triggerfish.tables.table import Tables

_CONFIGURE = frozenset({"CreateTable", "DeleteTable"})


def tables_of(call: AwsCall) -> Tables:
    """The app's tables, kept on its platform so table schemas are read once."""
    platform: Any = call.platform
    tables = getattr(platform, "_aws_tables", None)
    if tables is None or tables.store is not platform.store:
        tables = Tables(platform.store)
        platform._aws_tables = tables
    return tables


def aws_error(exc: TableError) -> AwsError:
    fields: dict[str, Any] = {}
    if isinstance(exc, ConditionFailedError) and exc.item is not None:
        fields["Item"] = exc.item
    if isinstance(exc, TransactionCanceledError):
        fields["CancellationReasons"] = [
            {"Code": r.code, **({"Message": r.message} if r.message else {}), **({"Item": r.item} if r.item else {})}
            for r in exc.reasons
        ]
    status = 500 if exc.code == "InternalServerError" else 400
    return AwsError(exc.code, exc.message, status=status, sender=status == 400, fields=fields)


def _operation(name: str) -> Handler:
    async def handle(call: AwsCall, params: dict[str, Any]) -> Any:
        try:
            return await api.run(tables_of(call), name, params)
        except TableError as exc:
            raise aws_error(exc) from None

    return handle


def _action(name: str) -> Operation:
    if name in _CONFIGURE:
        return Operation(_operation(name), "configure")
    if name in api.READ_OPERATIONS:
        return Operation(_operation(name), "read", also=("publish",))
    return Operation(_operation(name), "publish")


SERVICE = Service(
    name="dynamodb",
    target_prefix="DynamoDB_20120810",
    protocol="json1.0",
    operations={name: _action(name) for name in api.OPERATIONS},
)
