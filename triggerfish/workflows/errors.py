"""What a workflow raises: to its own code (a failed step, a timed-out wait) and to its operators."""

from __future__ import annotations

from typing import Any

from triggerfish.errors import TriggerfishError


class WorkflowError(TriggerfishError):
    """The root of every workflow error."""


class NonDeterminismError(WorkflowError):
    """The workflow's code no longer matches its history: operation `position` was recorded as one thing and
    the code now asks for another (or returns before it). Running workflows need a `ctx.version(...)` branch."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position


class StepFailedError(WorkflowError):
    """A step (or an invoke, a child workflow, a callback) failed for good; `error` is its error document
    (`errorType`, `errorMessage`), as recorded in the history."""

    def __init__(self, operation: str, error: dict[str, Any]) -> None:
        self.operation = operation
        self.error = error
        super().__init__(f"{operation} failed: {error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")


class WaitTimeoutError(WorkflowError):
    """A `wait_for_event` or a callback was not answered within its timeout."""


class WorkflowNotFoundError(WorkflowError, LookupError):
    """No workflow (or callback) of that id or token."""


class WorkflowStateError(WorkflowError):
    """The operation does not fit the workflow's state (cancelling one that has finished, completing a callback
    twice)."""


class BatchFailedError(WorkflowError):
    """A `map` or `parallel` whose completion criteria were not met; `result` is its `BatchResult`."""

    def __init__(self, operation: str, result: Any) -> None:
        self.operation = operation
        self.result = result
        failed = [item.index for item in result.items if item.status == "FAILED"]
        super().__init__(f"{operation} failed: the children at {failed} failed")
