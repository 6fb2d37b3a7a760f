"""A uid (and gid of the same number) for each app, from a range of its own, recorded in the store.

    uids = AppUids(store)
    uid = await uids.uid("shop")   # 1900000000 the first time, the same number ever after

Numbers are handed out from `base` up, one per app, never reused (not even
after an app is removed, so a new app can never own what an old one left),
and recorded in the store's key-value records (namespace
`triggerfish.server`, keys `uid/<app>` and `uid-next`) by compare-and-set,
so every server on one store and every restart agrees. No /etc/passwd entry
is needed: the kernel checks numbers, and a box names its user in its own
/etc/passwd.

The default range, 1,900,000,000 to 1,900,099,999, lies in the block that
systemd's uid conventions leave unused (1879048192-2147483647): clear of
system and login users, DynamicUser=, nspawn containers and subordinate
ranges. Two servers with separate stores on one machine should each get a
range of their own (`uid_base`).
"""

from __future__ import annotations

import orjson

from triggerfish.errors import IsolationError
from triggerfish.store import ABSENT, Store

NAMESPACE = "triggerfish.server"
#: The first uid given to an app.
UID_BASE = 1_900_000_000
#: How many uids the range holds.
UID_COUNT = 100_000
_NEXT = "uid-next"
_TRIES = 100


class AppUids:
    """Per-app uids in `store` (the server's own, unscoped store). See the module docstring."""

    def __init__(self, store: Store, *, base: int = UID_BASE, count: int = UID_COUNT) -> None:
        if base < 1000 or base + count > 2**31 - 1 or count < 1:
            raise ValueError(f"a uid range must lie between 1000 and 2147483647, not {base} + {count}")
        self.store = store
        self.base = base
        self.count = count

    async def uid(self, app: str) -> int:
        """`app`'s uid, given now if it has none. Raises IsolationError when the range is used up."""
        kv = self.store.kv
        key = f"uid/{app}"
        for _ in range(_TRIES):
            record = await kv.get(NAMESPACE, key)
            if record is not None:
                return int(orjson.loads(record.value)["uid"])
            number = await self._take_number()
            document = {"app": app, "uid": self.base + number}
            if await kv.put(NAMESPACE, key, orjson.dumps(document), if_version=ABSENT) is not None:
                return self.base + number
            # Another server gave this app a uid first: use that one (this number stays unused).
        raise IsolationError(f"could not record a uid for app {app!r}: the store kept changing; try again")

    async def _take_number(self) -> int:
        kv = self.store.kv
        for _ in range(_TRIES):
            record = await kv.get(NAMESPACE, _NEXT)
            taken = 0 if record is None else int(orjson.loads(record.value))
            if taken >= self.count:
                raise IsolationError(
                    f"all {self.count} uids from {self.base} are given to apps; give the server a new range (uid_base)"
                )
            expected = ABSENT if record is None else record.version
            if await kv.put(NAMESPACE, _NEXT, orjson.dumps(taken + 1), if_version=expected) is not None:
                return taken
        raise IsolationError("could not take a uid: the store kept changing; try again")
