"""The records of running workflows as this platform last wrote or read them: a checkpoint's compare-and-set
starts from one instead of reading the record first.

A workflow's run checkpoints again and again, and each checkpoint is a
compare-and-set of the workflow's record. The platform that wrote the record
last usually writes it next, so it keeps what it wrote (the encoded record and
the version the store gave it) and the next write names that version without
a read. The copy is only a guess: if anything else wrote the record since (a
cancellation through another node, say), the compare-and-set fails and the
writer reads the record afresh (`Workflows.write_record`). Versions are never
reused by a store, so a stale copy can never pass for a current one.

Kept as bytes, so that no caller can change a kept record by changing what
it was handed; bounded by bytes, oldest first out; a finished workflow's
record is dropped (nothing more checkpoints it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from triggerfish.workflows.history import RUNNING
from triggerfish.workflows.state import Stored

#: The most bytes of records kept at once (a record is at most the store's record limit).
MAX_BYTES = 32 * 1024 * 1024


class RecentRecords:
    """Encoded records of running workflows by id, with their versions; see the module docstring."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self._bytes = 0
        #: How many writes started from a kept record, and how many of those found it stale.
        self.hits = 0
        self.stale = 0

    def get(self, workflow_id: str) -> Stored | None:
        """The kept record (a fresh copy, the caller's to change), or None."""
        found = self._kept.get(workflow_id)
        if found is None:
            return None
        self.hits += 1
        return Stored(orjson.loads(found[0]), found[1])

    def wrote(self, record: Mapping[str, Any], value: bytes, version: int | None) -> None:
        """`record`, encoded as `value`, is in the store now at `version` (None: not known, keep nothing)."""
        workflow_id = str(record["id"])
        if version is None or record.get("status") != RUNNING or len(value) > self.max_bytes // 16:
            self.forget(workflow_id)
            return
        self.forget(workflow_id)
        self._kept[workflow_id] = (value, version)
        self._bytes += len(value)
        while self._bytes > self.max_bytes:
            _, (dropped, _) = self._kept.popitem(last=False)
            self._bytes -= len(dropped)

    def saw(self, stored: Stored) -> None:
        """`stored` was just read: keep it unless that very version is kept already."""
        found = self._kept.get(str(stored.record["id"]))
        if found is None or found[1] != stored.version:
            self.wrote(stored.record, orjson.dumps(stored.record), stored.version)

    def forget(self, workflow_id: str) -> None:
        found = self._kept.pop(workflow_id, None)
        if found is not None:
            self._bytes -= len(found[0])

    def __len__(self) -> int:
        return len(self._kept)
