"""A server's choice of whether and how to box apps, and the box each app version gets.

    isolation = Isolation()                 # on: box every app
    isolation.check()                       # IsolationError when bubblewrap cannot make a box here
    box = await isolation.box("shop", app_dir=..., code=..., store=store)

`triggerfish serve` boxes by default and will not start when no box can be
made, unless told `--no-isolation`; `triggerfish dev` boxes only with
`--isolate`. As root each app gets a uid of its own (see uids.py); not as
root, boxes run as the server's uid, which `describe()` and the log say.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from triggerfish.config import load_config
from triggerfish.errors import IsolationError
from triggerfish.isolation.box import DEFAULT_MAX_TASKS, DEFAULT_TMP_MB, Box, probe
from triggerfish.isolation.uids import UID_BASE, UID_COUNT, AppUids
from triggerfish.store import Store

log = logging.getLogger("triggerfish.isolation")

#: MiB a dependency install may write (its box's /tmp: the bundle's copy, pip's build trees, the result).
DEFAULT_INSTALL_MB = 2048

#: What `triggerfish serve --no-isolation` prints, and logs, before it serves anything.
UNBOXED_WARNING = (
    "WARNING: isolation is off: every app's code runs as this server's own user with nothing around it. "
    "It can read the admin key and the store of every app, change other apps' code and signal this server. "
    "Serve only apps you trust this way."
)


@dataclass(frozen=True, slots=True)
class Isolation:
    """Whether a server boxes apps (`enabled`), and the limits every box gets.

    `tmp_mb`: each box's /tmp; `install_mb`: a dependency install's;
    `max_tasks`: processes of one app at once; `uid_base`/`uid_count`: the
    range apps' uids come from (as root).
    """

    enabled: bool = True
    tmp_mb: int = DEFAULT_TMP_MB
    install_mb: int = DEFAULT_INSTALL_MB
    max_tasks: int = DEFAULT_MAX_TASKS
    uid_base: int = UID_BASE
    uid_count: int = UID_COUNT
    bwrap: str = "bwrap"

    def __post_init__(self) -> None:
        for name, low in (("tmp_mb", 1), ("install_mb", 1), ("max_tasks", 8), ("uid_base", 1000), ("uid_count", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"isolation's {name} is a whole number of at least {low}, not {value!r}")

    @property
    def per_app_uid(self) -> bool:
        """Whether each app runs as a uid of its own (the server runs as root)."""
        return self.enabled and os.geteuid() == 0

    def check(self) -> None:
        """Make a box once and run `true` in it; IsolationError saying why when that fails. Logs what holds."""
        if not self.enabled:
            log.warning(UNBOXED_WARNING)
            return
        uid = self.uid_base if os.geteuid() == 0 else None
        reason = probe(Box(uid=uid, gid=uid, bwrap=self.bwrap))
        if reason is not None:
            raise IsolationError(reason)
        log.info("isolation: %s", self.describe())
        if not self.per_app_uid:
            log.warning(
                "isolation: not running as root, so apps' boxes run as this server's own uid %d: namespaces and "
                "the filesystem view still apply, but a box's processes share the uid of the server's; run as "
                "root to give each app a uid of its own",
                os.getuid(),
            )

    def describe(self) -> str:
        """One line on what holds, for the log and `triggerfish serve`'s start."""
        if not self.enabled:
            return "off: apps run as the server's user with nothing around them"
        who = "each app as a uid of its own" if self.per_app_uid else f"as this server's uid {os.getuid()}"
        return f"on: every app in a box (bubblewrap), {who}, /tmp of {self.tmp_mb} MiB, {self.max_tasks} tasks"

    async def box(self, app: str, *, app_dir: Path, code: Path, store: Store, hide: Sequence[Path] = ()) -> Box | None:
        """The box of a version of `app` whose code is `code` (bound read-only) and whose triggerfish.toml
        is in `app_dir` (its `network` setting); None when isolation is off.

        `store` records the app's uid (as root). `hide` are directories inside `code` its processes must
        not see (a dev data directory). Raises IsolationError when no uid is left, DeclarationError for
        a bad triggerfish.toml.
        """
        if not self.enabled:
            return None
        uid = await AppUids(store, base=self.uid_base, count=self.uid_count).uid(app) if self.per_app_uid else None
        return self._box(uid, load_config(app_dir).network, code, hide)

    def _box(self, uid: int | None, network: str, code: Path, hide: Sequence[Path]) -> Box:
        code = code.resolve()
        return Box(
            uid=uid,
            gid=uid,
            network=network != "none",
            tmp_mb=self.tmp_mb,
            max_tasks=self.max_tasks,
            read_only=(str(code),),
            hide=tuple(str(path.resolve()) for path in hide if path.resolve().is_relative_to(code)),
            bwrap=self.bwrap,
        )

    def install_box(self, box: Box) -> Box:
        """The box a dependency install of that app runs in: its uid, the network (pip reaches its index),
        a /tmp of `install_mb`."""
        return Box(
            uid=box.uid,
            gid=box.gid,
            network=True,
            tmp_mb=self.install_mb,
            max_tasks=self.max_tasks,
            read_only=box.read_only,
            bwrap=self.bwrap,
        )
