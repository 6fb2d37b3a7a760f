"""Sagas: register a compensation for each step; when a later step fails, they run in reverse order, each durable.

    @app.workflow
    def order(ctx, order):
        with Saga(ctx) as saga:
            saga.step(reserve, order, compensate=release)     # release(order) undoes it
            saga.step(charge, order, compensate=refund)
            saga.step(ship, order)
        return "done"

A compensation is a step of the workflow like any other (checkpointed,
retried, never run twice once it succeeded), so a crash in the middle of
compensating goes on where it stopped. Only an error of the workflow's code
compensates: a workflow that is suspended (a sleep, a wait) or cancelled is
not undone.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from triggerfish.retry import RetryPolicy
from triggerfish.workflows.context import DEFAULT_MAX_ATTEMPTS, WorkflowContext

#: Attempts of each compensation: it has to happen, so more than a step's default.
COMPENSATION_ATTEMPTS = 10


class Saga:
    """A unit of work whose steps are undone, newest first, when one of them (or the code between) fails."""

    def __init__(self, ctx: WorkflowContext) -> None:
        self.ctx = ctx
        self._compensations: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def step(
        self,
        fn: Callable[..., Any],
        *args: Any,
        compensate: Callable[..., Any] | None = None,
        name: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Any:
        """`ctx.step(fn, *args, **kwargs)`; once it succeeded, `compensate(*args, **kwargs)` undoes it on failure.

        `max_attempts` and `retry` are the step's (as `ctx.step` takes them), not handed to `compensate`."""
        result = self.ctx.step(fn, *args, name=name, max_attempts=max_attempts, retry=retry, **kwargs)
        if compensate is not None:
            self.add(compensate, *args, name=f"undo {name or getattr(fn, '__name__', 'step')}", **kwargs)
        return result

    def add(self, compensate: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> None:
        """Register a compensation by hand: `compensate(*args, **kwargs)`, run as a step named `name`."""
        if not callable(compensate):
            raise TypeError(f"a compensation must be callable, not {compensate!r}")
        label = name or f"undo {getattr(compensate, '__name__', 'step')}"
        self._compensations.append((label, compensate, args, kwargs))

    def compensate(self) -> None:
        """Run every registered compensation, newest first (each a durable step), and forget them."""
        while self._compensations:
            label, compensate, args, kwargs = self._compensations.pop()
            self.ctx.step(compensate, *args, name=label, max_attempts=COMPENSATION_ATTEMPTS, **kwargs)

    def __enter__(self) -> Saga:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # Suspend and Superseded are BaseExceptions on purpose: a waiting or cancelled workflow is not undone.
        if error is not None and isinstance(error, Exception):
            self.compensate()
