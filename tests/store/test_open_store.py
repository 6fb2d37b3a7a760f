"""open_store: a bad store URL is refused with what to write instead, and opens nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from triggerfish.errors import AtomicConflictError, StoreError, UnknownStoreURLError
from triggerfish.store import ABSENT, open_store, urls
from triggerfish.store.atomic import Append, Put
from triggerfish.store.urls import CompositeStore


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "the schemes known are memory://, postgres://, postgresql://, sqlite://"),
        ("memory", "the schemes known are memory://, postgres://, postgresql://, sqlite://"),
        ("redis://db/0", "the schemes known are memory://, postgres://, postgresql://, sqlite://"),
        ("sqlite://", "names no file: write sqlite:///path/to/store.db"),
        ("sqlite:///", "names no file: write sqlite:///path/to/store.db"),
        ("sqlite://host/store.db", "write sqlite:///relative/path.db or sqlite:////absolute/path.db"),
        ("memory://?colour=blue", "unknown option(s) colour"),
        ("memory://?max_record_bytes=lots", "max_record_bytes must be a whole number"),
    ],
)
async def test_a_bad_url_names_the_fix(url: str, reason: str) -> None:
    with pytest.raises(UnknownStoreURLError) as caught:
        await open_store(url)
    assert reason in str(caught.value)
    assert url in str(caught.value) or not url
    assert isinstance(caught.value, StoreError)
    assert isinstance(caught.value, ValueError)


def test_a_refused_sqlite_url_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownStoreURLError):
        asyncio.run(open_store("sqlite://host/store.db?colour=blue"))
    assert os.listdir(tmp_path) == []


async def test_each_known_scheme_opens(tmp_path: Path) -> None:
    for url in ("memory://", f"sqlite:///{tmp_path / 'store.db'}"):
        store = await open_store(url)
        try:
            record = await store.log.append("bus", b"x")
            assert record.offset == 1
        finally:
            await store.close()


@pytest.mark.parametrize("limit", ["0", "-1"])
async def test_a_record_limit_below_one_byte_is_refused(limit: str) -> None:
    with pytest.raises(UnknownStoreURLError, match="max_record_bytes must be at least 1"):
        await open_store(f"memory://?max_record_bytes={limit}")


async def test_a_url_that_is_not_text_is_refused() -> None:
    with pytest.raises(UnknownStoreURLError, match="must be a string"):
        await open_store(b"memory://")  # type: ignore[arg-type]


async def test_a_backend_whose_driver_is_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(urls.BACKENDS, "fancy", "tests.store.missing_driver_backend:open_from_url")
    monkeypatch.setitem(urls.EXTRAS, "fancy", "fancy-extra")
    with pytest.raises(UnknownStoreURLError) as caught:
        await open_store("fancy://somewhere")
    assert "pip install 'triggerfish[fancy-extra]'" in str(caught.value)
    assert "no_such_driver_package" in str(caught.value)


def test_backends_are_imported_only_when_their_scheme_is_used(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from triggerfish.store import open_store\n"
        "async def main():\n"
        "    store = await open_store('memory://')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "assert 'triggerfish.store.sqlite' not in sys.modules\n"
        "assert 'triggerfish.store.postgres' not in sys.modules\n"
        "assert 'psycopg' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)


async def test_each_part_may_come_from_its_own_url(tmp_path: Path) -> None:
    records = f"sqlite:///{tmp_path / 'records.db'}"
    store = await open_store("memory://", kv=records, queues="memory://")
    assert isinstance(store, CompositeStore)
    assert store.atomic_writes is False
    assert len(store.engines) == 2  # memory:// named twice is opened once
    await store.kv.put("ns", "k", b"kept")
    await store.log.append("s", b"x")
    # Not atomic across engines: the ops run in order and stop at the first failed condition.
    with pytest.raises(AtomicConflictError):
        await store.atomic([Append("s", [b"y"]), Put("ns", "k", b"no", if_version=ABSENT)])
    assert await store.log.last_offset("s") == 2
    await store.close()
    assert all(engine.closed for engine in store.engines.values())
    again = await open_store(records)
    kept = await again.kv.get("ns", "k")
    assert kept is not None
    assert kept.value == b"kept"
    await again.close()


async def test_a_bad_part_url_fails_the_whole_open(tmp_path: Path) -> None:
    with pytest.raises(UnknownStoreURLError, match="colour"):
        await open_store(f"sqlite:///{tmp_path / 's.db'}", log="memory://?colour=blue")
    assert os.listdir(tmp_path) == []
