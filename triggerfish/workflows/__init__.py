"""Durable workflows in plain Python: `@app.workflow`, its context, sagas, and their errors (docs/workflows.md)."""

from triggerfish.workflows.context import BatchItem, BatchResult, Callback, WorkflowContext
from triggerfish.workflows.errors import (
    BatchFailedError,
    NonDeterminismError,
    StepFailedError,
    WaitTimeoutError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from triggerfish.workflows.saga import Saga

__all__ = [
    "BatchFailedError",
    "BatchItem",
    "BatchResult",
    "Callback",
    "NonDeterminismError",
    "Saga",
    "StepFailedError",
    "WaitTimeoutError",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowStateError",
]
