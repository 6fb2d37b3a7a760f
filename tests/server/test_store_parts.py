"""A server whose store parts come from different URLs: the key-value records from one file, the rest from another."""

from __future__ import annotations

from pathlib import Path

from triggerfish.names import SERVER_NAMESPACE
from triggerfish.server.host import Host
from triggerfish.store import open_store


async def test_serve_takes_its_key_value_records_from_their_own_url(tmp_path: Path) -> None:
    main, records = tmp_path / "main.db", tmp_path / "records.db"
    host = Host(data_dir=tmp_path / "server", store_url=f"sqlite:///{main}", store_parts={"kv": f"sqlite:///{records}"})
    await host.start()
    try:
        assert host.first_admin_key is not None
        assert not host.store.atomic_writes  # two engines: writes run in order, and the server still works
    finally:
        await host.stop()
    async with await open_store(f"sqlite:///{records}") as kv_store, await open_store(f"sqlite:///{main}") as rest:
        # The admin key's record is a key-value record: in the file named for them, not in the main one.
        assert await kv_store.kv.scan(SERVER_NAMESPACE, limit=10)
        assert not await rest.kv.scan(SERVER_NAMESPACE, limit=10)
