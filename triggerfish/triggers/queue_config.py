"""Queue settings from triggerfish.toml's `[queues.NAME]` tables, as the store's `QueueConfig`s.

    configs = queue_configs(project.queue_settings(stage), subscribed=["orders"])

triggerfish.toml's own checks (`triggerfish.config`) see one key at a time:
the names, the types, positive numbers. This sees what is left: ranges, and
the redrive chain as a whole. A queue has a dead-letter queue: one that names
none gets `<queue>.dlq` after `DEFAULT_MAX_RECEIVES` receives, the same
default `triggerfish.testing` uses, unless it is itself a dead-letter queue
that no function consumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from triggerfish.errors import DeclarationError
from triggerfish.names import FUNCTION_QUEUE_PREFIX, queue_dead_letter_queue
from triggerfish.store import QueueConfig

#: Receives after which a failing message moves to its dead-letter queue, unless the queue says otherwise.
DEFAULT_MAX_RECEIVES = 3


def queue_configs(
    queue_settings: Mapping[str, Mapping[str, Any]], subscribed: Sequence[str] = ()
) -> dict[str, QueueConfig]:
    """The `QueueConfig` of every `[queues.NAME]` table, checked as a whole.

    A table that names no redrive gets the default: `max_receives` 3 and
    `dead_letter` `<queue>.dlq`; naming one of the two fills in the other.
    The exception is a dead-letter queue nobody consumes: it keeps what it is
    given, since a redrive there would only move failures on again.
    Raises DeclarationError naming the table and the key for what
    triggerfish.toml's own checks cannot see: values out of range, a queue
    that is its own dead-letter queue, dead-letter queues that lead back to
    where they started (`subscribed` queues without a table count with the default).
    """
    configs: dict[str, QueueConfig] = {}
    # A dead-letter queue is where failures end: given a table of its own (say, for its retention) it
    # gets no default redrive of its own, unless a function consumes it and so can fail on it.
    dead_letters = {table.get("dead_letter", queue_dead_letter_queue(name)) for name, table in queue_settings.items()}
    dead_letters |= {queue_dead_letter_queue(name) for name in subscribed}
    for name, table in queue_settings.items():
        names_redrive = "max_receives" in table or "dead_letter" in table
        if name in dead_letters and name not in subscribed and not names_redrive:
            values = dict(table)
        else:
            values = {"max_receives": DEFAULT_MAX_RECEIVES, "dead_letter": queue_dead_letter_queue(name), **table}
        if values.get("dead_letter") == name:
            raise DeclarationError(
                f"[queues.{name}]: dead_letter names the queue itself, so failing messages would never leave it;"
                f" name another queue, such as dead_letter = {queue_dead_letter_queue(name)!r}"
            )
        if isinstance(values.get("dead_letter"), str) and values["dead_letter"].startswith(FUNCTION_QUEUE_PREFIX):
            raise DeclarationError(
                f"[queues.{name}]: dead_letter = {values['dead_letter']!r} is the platform's queue of a function's"
                " asynchronous invocations (fn.*); name a queue that does not start with 'fn.'"
            )
        try:
            configs[name] = QueueConfig(**values)
        except (ValueError, TypeError) as exc:  # InvalidInputError, or InvalidNameError for a bad dead_letter
            raise DeclarationError(f"[queues.{name}]: {exc}") from None
    redrive = {name: c.dead_letter for name, c in configs.items()}
    for name in subscribed:
        redrive.setdefault(name, queue_dead_letter_queue(name))
    for start in redrive:
        path = [start]
        while (following := redrive.get(path[-1])) is not None:
            if following in path:
                cycle = path[path.index(following) :]
                culprit = next(q for q in cycle if q in configs)  # a loop needs at least one table's dead_letter
                raise DeclarationError(
                    f"[queues.{culprit}]: dead_letter = {redrive[culprit]!r} makes a loop of dead-letter queues"
                    f" ({' -> '.join([*cycle, following])}), so failing messages would circle for ever; end the"
                    " chain at a queue that is neither subscribed nor configured with its own dead_letter"
                )
            path.append(following)
    return configs
