"""What `Store.atomic` checks before it writes, and that the store runs copies of what it checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from triggerfish.errors import InvalidInputError, InvalidNameError
from triggerfish.store import open_store
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
