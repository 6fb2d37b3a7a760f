"""What `Store.atomic` checks before it writes, and that the store runs copies of what it checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from triggerfish.errors import InvalidInputError, InvalidNameError
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.store.atomic import Append, Put, check_ops


async def test_a_put_is_run_as_a_checked_copy_in_the_form_the_store_runs() -> None:
    store = await open_store("memory://")
    try:
        plain = Put("invocations", "r/a/00001", b"{}", ttl=3600.0)
        untimed = Put("invocations", "r/b/00001", b"{}")
        whole_ttl = Put("invocations", "r/c/00001", b"{}", ttl=60)
        from_bytearray = Put("invocations", "r/d/00001", bytearray(b"{}"), ttl=1.5)  # type: ignore[arg-type]
        checked = check_ops(store, [plain, untimed, whole_ttl, from_bytearray, Append("s", [b"x"])])
        # Copies (a Put is not frozen: the caller's may change after the check), equal to what was given.
        assert checked[0] == plain
        assert checked[0] is not plain
        assert checked[1] == untimed
        assert checked[1] is not untimed
        whole, copied = checked[2], checked[3]
        assert isinstance(whole, Put)
        assert isinstance(copied, Put)
        assert whole == Put("invocations", "r/c/00001", b"{}", ttl=60.0)
        assert type(whole.ttl) is float
        assert copied == Put("invocations", "r/d/00001", b"{}", ttl=1.5)
        assert type(copied.value) is bytes
        await store.atomic([plain, untimed])
        found = await store.kv.get("invocations", "r/a/00001")
        assert found is not None
        assert found.value == b"{}"
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
async def test_a_put_changed_after_the_call_is_written_as_it_was_checked(url: str, tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}" if url == "sqlite" else url)
    try:
        put = Put("invocations", "r/a/00001", b"checked", ttl=3600.0)
        writing = asyncio.ensure_future(store.atomic([put]))
        await asyncio.sleep(0)  # the call checked its ops and handed them on; the write has not run yet
        put.value = b"x" * (store.kv.max_record_bytes + 1)
        put.key = ""
        await writing
        found = await store.kv.get("invocations", "r/a/00001")
        assert found is not None
        assert found.value == b"checked"
    finally:
        await store.close()


async def test_a_kept_put_is_still_checked() -> None:
    store = await open_store("memory://")
    try:
        with pytest.raises(InvalidNameError):
            check_ops(store, [Put("bad name!", "k", b"v")])
        with pytest.raises(InvalidNameError):
            check_ops(store, [Put("ns", "", b"v")])
        with pytest.raises(InvalidInputError):
            check_ops(store, [Put("ns", "k", b"v", ttl=-1.0)])
        with pytest.raises(InvalidInputError):
            check_ops(store, [Put("ns", "k", "text")])  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            check_ops(store, [Put("ns", "k", b"x" * (store.kv.max_record_bytes + 1))])
    finally:
        await store.close()


def test_names_and_keys_are_checked_the_same_however_often_they_are_seen() -> None:
    from triggerfish.store._checks import check_body, check_key, check_name, check_seconds

    for _ in range(2):  # the second time from the set of names already found valid
        assert check_name("namespace", "invocations") == "invocations"
        with pytest.raises(InvalidNameError):
            check_name("namespace", "-invocations")

    class Sneaky(str):  # a str subclass is never taken from the set: its equality is its own
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    with pytest.raises(InvalidNameError):
        check_name("namespace", Sneaky("bad name!"))
    assert check_key("r/5f0c1f6e/00001") == "r/5f0c1f6e/00001"
    assert check_key("ключ/ü") == "ключ/ü"  # not ASCII: still a key, checked the long way
    for bad in ("", "a\x00b", "lone \ud800", "k" * 1025):
        with pytest.raises(InvalidNameError):
            check_key(bad)
    assert check_body("value", b"x", 1) == b"x"
    with pytest.raises(InvalidInputError):
        check_body("value", b"xy", 1)
    assert check_seconds("ttl", 1.5, allow_zero=False) == 1.5
    for bad_seconds in (0.0, -1.0, float("nan"), float("inf"), 1e11):
        with pytest.raises(InvalidInputError):
            check_seconds("ttl", bad_seconds, allow_zero=False, maximum=1e10)


async def test_a_common_message_takes_the_short_checks_and_every_other_the_full_ones() -> None:
    # An invocation's message (bytes, no delay, ASCII string attributes) is checked by the cheapest form of each
    # test; anything else by the full checks, which answer as ever. Either way the attributes are copied.
    store = await open_store("memory://")
    try:
        attributes = {"triggerfish.invocation": '{"request_id":"r"}'}
        plain = OutgoingMessage(b"{}", attributes=attributes)
        unicode = OutgoingMessage(b"{}", attributes={"name": "naïve ✓"})
        whole_delay = OutgoingMessage(b"{}", delay=2)
        [checked] = store.queues.check_send("fn.f", [plain])
        assert checked == plain
        assert checked.attributes is not attributes
        attributes["triggerfish.invocation"] = "changed later"
        assert checked.attributes == {"triggerfish.invocation": '{"request_id":"r"}'}
        assert store.queues.check_send("fn.f", [unicode]) == [unicode]
        [delayed] = store.queues.check_send("fn.f", [whole_delay])
        assert (delayed.delay, type(delayed.delay)) == (2.0, float)
        refused = [
            OutgoingMessage(b"{}", attributes={"name": "\ud800"}),
            OutgoingMessage(b"{}", attributes={"name": 7}),  # type: ignore[dict-item]
            OutgoingMessage(b"{}", delay=15 * 60.0 + 1),
            OutgoingMessage(b"{}", delay=-1.0),
            OutgoingMessage(b"x" * (store.queues.max_record_bytes + 1)),
            OutgoingMessage("{}"),  # type: ignore[arg-type]
        ]
        for message in refused:
            with pytest.raises(InvalidInputError):
                store.queues.check_send("fn.f", [message])
    finally:
        await store.close()
