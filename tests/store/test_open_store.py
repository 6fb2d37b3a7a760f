"""open_store: a bad store URL is refused with what to write instead, and opens nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from triggerfish.errors import StoreError, UnknownStoreURLError
from triggerfish.store import open_store


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "the schemes known are memory://, sqlite://"),
        ("memory", "the schemes known are memory://, sqlite://"),
        ("postgresql://db/triggerfish", "the schemes known are memory://, sqlite://"),
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
    assert list(tmp_path.iterdir()) == []


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
