"""API keys: the first admin key, a key scoped to one app, listing, and a revoke that takes effect at once."""

import asyncio
import hashlib
import stat
import tempfile
from pathlib import Path

from triggerfish.server.keys import ApiKeys
from triggerfish.store import open_store


def file_bytes(directory: Path, pattern: str) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob(pattern)))


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/store.db"
        async with await open_store(url) as store:
            keys = ApiKeys(store)

            # First start: no keys yet, so the server makes an admin key and writes it where only you can read it.
            admin = await keys.ensure_admin(Path(directory) / "admin.key")
            assert admin is not None
            assert admin.startswith("tfk_")
            assert stat.S_IMODE((Path(directory) / "admin.key").stat().st_mode) == 0o600
            assert await keys.ensure_admin(Path(directory) / "admin.key") is None  # keys exist: nothing to do

            # A key for CI that deploys app "shop", and nothing else. Its text is shown this once.
            text, info = await keys.create("shop ci", "deployer", app="shop")
            print("key:", text)
            print("listed as:", info.prefix, info.name, info.role, info.app)
            assert (await keys.authenticate(text)) == info

            # Listing shows prefixes and names, never a secret or a hash.
            assert [k.name for k in await keys.list()] == ["first admin key", "shop ci"]
            assert [k.name for k in await keys.list(app="shop")] == ["shop ci"]

            # A second server on the same store trusts the key, and stops the moment it is revoked.
            async with await open_store(url) as elsewhere:
                assert await ApiKeys(elsewhere).authenticate(text) == info
                await keys.revoke(info.prefix)
                assert await ApiKeys(elsewhere).authenticate(text) is None

        # The store file holds the key's SHA-256, never the key.
        stored = file_bytes(Path(directory), "store.db*")
        assert text.encode() not in stored
        assert hashlib.sha256(text.encode()).hexdigest().encode() in stored


asyncio.run(main())
