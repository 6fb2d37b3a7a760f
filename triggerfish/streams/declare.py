"""The names stream sources take, checked at declaration (pure, no I/O): NATS subjects and stream names,
Redis stream keys and groups, the built-in stream's name and partition-key field.

    check_nats_subject("orders.>")

The stream settings every stream trigger shares (batches, windows, `to_bus`,
rules, starting positions) are `triggerfish.model.StreamSettings`.
"""

from __future__ import annotations

import re

_NATS_TOKEN = re.compile(r"^[^\s.*>]+$")
_NATS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_nats_subject(subject: object) -> str:
    """A NATS subject filter: dot-separated tokens, `*` a whole token, `>` a whole last token."""
    example = "such as 'orders.>' or 'orders.*.created'"
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"the NATS subject must be a non-empty string {example}, not {subject!r}")
    tokens = subject.split(".")
    for index, token in enumerate(tokens, start=1):
        if token == ">" and index == len(tokens):
            continue
        if token == "*":
            continue
        if not _NATS_TOKEN.match(token):
            raise ValueError(
                f"the NATS subject {subject!r}: token {index} ({token!r}) is empty, holds white space, or uses '*'"
                f" or '>' inside a token; {example}"
            )
    return subject


def nats_subject_matches(subject_filter: str, subject: str) -> bool:
    """Whether a message on `subject` matches `subject_filter`: `*` one token, `>` one or more at the end."""
    wanted, tokens = subject_filter.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(wanted) == len(tokens)


def check_nats_name(what: str, name: object) -> str:
    """A JetStream stream or consumer name: 1 to 64 letters, digits, '-' or '_'."""
    if not isinstance(name, str) or not _NATS_NAME.match(name):
        raise ValueError(f"the JetStream {what} name must be 1 to 64 letters, digits, '-' or '_', not {name!r}")
    return name


def check_stream_name(what: str, name: object) -> str:
    """A Redis stream key or consumer group, or a built-in stream's name: 1 to 128 of `A-Za-z0-9_.-`."""
    if not isinstance(name, str) or not _STREAM_NAME.match(name):
        raise ValueError(
            f"the {what} must be 1 to 128 letters, digits, '_', '.' or '-', such as 'readings', not {name!r}"
        )
    return name


def check_partition_key(field: object) -> str:
    """The record field a built-in stream is partitioned by: an identifier such as 'device'."""
    if not isinstance(field, str) or not _FIELD.match(field):
        raise ValueError(f"partition_key must name a field of the records, such as 'device', not {field!r}")
    return field
