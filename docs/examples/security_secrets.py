"""Secrets at rest: sealed in the store, the key apart from it, refused under another key, and a key rotation."""

import asyncio
import tempfile
from pathlib import Path

from triggerfish.errors import SecretsKeyError
from triggerfish.secrets.keyring import KEY_ENV, SecretsKey, make_key_file
from triggerfish.secrets.store import open_secrets
from triggerfish.store import open_store

VALUE = "sk_live_51HrMexample"


def file_bytes(directory: Path, pattern: str) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob(pattern)))


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        key_file = data / "secrets.key"
        async with await open_store(f"sqlite:///{data}/store.db") as store:
            # A server's first start makes the key (mode 0600) beside the store, never in it.
            secrets = await open_secrets(store.kv, environ={}, key_file=None, default_file=key_file)
            await secrets.set("shop", "STRIPE_KEY", VALUE)
            print([info.as_dict()["name"] for info in await secrets.list("shop")])  # names, never values
            assert await secrets.values("shop", ["STRIPE_KEY"]) == {"STRIPE_KEY": VALUE}
            old = secrets.ring().sealing

            # A node given another key refuses to start: it would seal what the others cannot open.
            stranger = SecretsKey.generate()
            try:
                await open_secrets(store.kv, environ={KEY_ENV: stranger.text}, key_file=None, default_file=None)
                raise AssertionError("another key was accepted")
            except SecretsKeyError as refused:
                print(refused)

            # Rotation: the new key first on every node, the old one after it; reseal; then drop the old one.
            new = SecretsKey.generate()
            make_key_file(key_file, [new, old])
            both = await open_secrets(store.kv, environ={}, key_file=None, default_file=key_file)
            print((await both.reseal()).as_dict())
            make_key_file(key_file, [new])
            after = await open_secrets(store.kv, environ={}, key_file=None, default_file=key_file)
            assert await after.values("shop", ["STRIPE_KEY"]) == {"STRIPE_KEY": VALUE}

        # A copy of the store alone holds no value: only names and sealed bytes.
        stored = file_bytes(data, "store.db*")
        assert VALUE.encode() not in stored
        assert b"STRIPE_KEY" in stored


asyncio.run(main())
