"""The SQLite store binds `bytes` and `None` through adapters of its own (store/_sqlite_binding.py): what it
writes must be what sqlite3 wrote without them, and an adapter the application registered must stay its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from triggerfish.store import OutgoingMessage, open_store

BYTES: tuple[type[Any], type[Any]] = (bytes, sqlite3.PrepareProtocol)
NONE: tuple[type[Any], type[Any]] = (type(None), sqlite3.PrepareProtocol)


async def test_bodies_are_stored_as_blobs_and_absent_values_as_null(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        # Both adapters are in place (the search they end was a quarter of the writer's work per queued message).
        assert sqlite3.adapters[BYTES](b"\x00body") == b"\x00body"
        assert sqlite3.adapters[NONE](None) is None
        await store.queues.send_many("q", [OutgoingMessage(b"\x00\xffbody"), OutgoingMessage(b"")])
        await store.kv.put("ns", "k", b"\x00value")
        [message] = await store.queues.receive("q")
        assert message.body == b"\x00\xffbody"
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT typeof(body), hex(body), grp, dedup_id FROM messages ORDER BY seq").fetchall()
        value = raw.execute("SELECT typeof(value), hex(value), typeof(expires_at) FROM kv WHERE key = 'k'").fetchone()
    raw.close()
    assert rows == [("blob", "00FF626F6479", None, None), ("blob", "", None, None)]
    assert value == ("blob", "0076616C7565", "null")


async def test_an_adapter_the_application_registered_is_left_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def theirs(value: bytes) -> bytes:
        return value

    monkeypatch.setitem(sqlite3.adapters, BYTES, theirs)
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.close()
    assert sqlite3.adapters[BYTES] is theirs
