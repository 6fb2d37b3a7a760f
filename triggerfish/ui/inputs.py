"""The inputs of invocations started from this dashboard, so "re-run with this input" has one to offer.

Invocation records keep what an attempt did (status, timings, output) but
not the event it was given: an event can be megabytes and hold personal
data, and records are written on the hot path. The dashboard remembers the
payloads it sent itself, the last `SIZE` of them in this process's memory;
for other invocations the re-run form starts from an empty object and says so.
"""

from __future__ import annotations

from collections import OrderedDict

SIZE = 200


class RecentInputs:
    """The last `size` payloads by request id (the JSON text as the viewer typed it)."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._by_id: OrderedDict[str, str] = OrderedDict()

    def remember(self, request_id: str, payload: str) -> None:
        self._by_id[request_id] = payload
        self._by_id.move_to_end(request_id)
        while len(self._by_id) > self.size:
            self._by_id.popitem(last=False)

    def get(self, request_id: str) -> str | None:
        return self._by_id.get(request_id)
