"""The names the platform gives its own streams and queues: written and read back by one declaration, and the
checks that sort a user's queue from the platform's own agree with it (pure)."""

from __future__ import annotations

import pytest

from triggerfish import names


@pytest.mark.parametrize(
    ("family", "name", "full"),
    [
        (names.bus_stream, "orders", "bus.orders"),
        (names.topic_stream, "alerts", "topic.alerts"),
        (names.record_stream, "ship", "invocations.ship"),
        (names.event_stream, "acct-1", "eventstore.stream.acct-1"),
        (names.function_queue, "ship", "fn.ship"),
        (names.function_dead_letter_queue, "ship", "dlq.ship"),
        (names.queue_dead_letter_queue, "jobs", "jobs.dlq"),
        (names.bus_delivery_queue, "default", "deliver.default"),
        (names.bus_dead_letter_queue, "default", "deliver.default.dead-letter"),
        (names.topic_delivery_queue, "alerts", "topic-deliver.alerts"),
        (names.topic_dead_letter_queue, "alerts", "topic-dead-letter.alerts"),
        (names.objects_namespace, "photos", "triggerfish.objects.bucket.photos"),
    ],
)
def test_a_name_is_written_and_read_back_by_its_one_declaration(family: names.Name, name: str, full: str) -> None:
    assert family(name) == full
    assert family.name_in(full) == name
    assert family.holds(full)


def test_a_name_of_another_family_is_not_read_as_one_of_this() -> None:
    assert names.bus_of_stream("topic.alerts") is None
    assert names.topic_of_stream("bus.orders") is None
    assert names.function_queue.name_in("dlq.ship") is None
    assert names.bus_dead_letter_queue.name_in("deliver.default") is None


@pytest.mark.parametrize(
    ("queue", "dead_letter", "platform"),
    [
        ("jobs", False, False),
        ("jobs.dlq", True, False),  # a user's queue's own dead letters: the app's queue
        ("fn.ship", False, True),
        ("dlq.ship", True, True),
        ("deliver.default", False, True),
        ("deliver.default.dead-letter", True, True),
        ("topic-deliver.alerts", False, True),
        ("topic-dead-letter.alerts", True, True),
    ],
)
def test_dead_letter_and_platform_queues_are_told_by_the_same_declarations(
    queue: str, dead_letter: bool, platform: bool
) -> None:
    assert names.is_dead_letter_queue(queue) is dead_letter
    assert names.is_platform_queue(queue) is platform
