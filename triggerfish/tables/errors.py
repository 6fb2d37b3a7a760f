"""The errors of tables, each carrying the DynamoDB error code a client expects.

The AWS endpoint answers them with `code`; `context.table` raises them in the handler as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from triggerfish.errors import InvalidInputError, TriggerfishError


class TableError(TriggerfishError):
    """The root of table errors. `code` is DynamoDB's name for it."""

    code = "InternalServerError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(TableError, InvalidInputError):
    """A request DynamoDB would refuse: a bad expression, an item that breaks the key schema, ..."""

    code = "ValidationException"


class ConditionFailedError(TableError):
    """A condition expression did not hold, so nothing was written. `item` is the item as it was, when asked for."""

    code = "ConditionalCheckFailedException"

    def __init__(self, message: str = "The conditional request failed", item: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.item = item


class TableNotFoundError(TableError, LookupError):
    code = "ResourceNotFoundException"


class TableExistsError(TableError):
    code = "ResourceInUseException"


@dataclass(frozen=True, slots=True)
class CancellationReason:
    """Why one action of a transaction was refused (`Code` "None" for the actions that were fine)."""

    code: str = "None"
    message: str | None = None
    item: dict[str, Any] | None = None


class TransactionCanceledError(TableError):
    """A transaction's condition failed: nothing of it was written. `reasons` has one entry per action, in order."""

    code = "TransactionCanceledException"

    def __init__(self, reasons: Sequence[CancellationReason]) -> None:
        codes = ", ".join(reason.code for reason in reasons)
        super().__init__(f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]")
        self.reasons = list(reasons)
