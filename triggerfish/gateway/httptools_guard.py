"""uvicorn's httptools protocol behind the connection guard: what GuardedH11Protocol guarantees, on a C parser.

    GatewayServer(app, http="httptools")       # the default where httptools is installed (server.py)

httptools (llhttp, in C) parses a request head in a fraction of h11's
Python time, which under HTTP load was about a tenth of the platform's
event loop (docs/benchmarks.md). The guard's promises do not depend on the
parser, so this protocol keeps each of them (connections.py):

- **Head timeout.** A head that has not arrived in full `header_timeout`
  seconds after the connection opened (or after its first byte, on a kept-
  alive connection) closes the connection, with a 408 when part of it came;
  slow bytes do not extend it.
- **Eviction.** While no request is being served the connection reports
  itself waiting, so the guard may close it to make room.
- **Head size.** h11 stops buffering an incomplete head at
  `max_header_bytes`; llhttp has no such limit, so the bytes of a head still
  arriving are counted here and past the limit the connection is answered
  400 and closed, as under h11. A head that arrives whole is the gateway's to
  judge (431), as under h11.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from triggerfish.gateway.coalesce import CoalescingTransport
from triggerfish.gateway.connections import GuardedConnection
from triggerfish.gateway.request_body import BODY_RECEIVED

if TYPE_CHECKING:
    from triggerfish.gateway.connections import ConnectionGuard

_HEAD_TOO_LARGE = "Request head too large."


class GuardedHttpToolsProtocol(GuardedConnection, HttpToolsProtocol):
    """uvicorn's httptools protocol with a head timeout and a head-size bound, reporting to a ConnectionGuard."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard
        # uvicorn logs every malformed request; through the guard's limiter that is a line per interval.
        self.logger = guard.uvicorn_log  # type: ignore[assignment]
        self._max_head = config.h11_max_incomplete_event_size or 16 * 1024
        self._head_timer: asyncio.TimerHandle | None = None
        #: No request is being served: the connection is idle or a head is arriving (the guard may evict it).
        self._waiting = True
        #: Of the request being served: whether all of it arrived, and whether its response went out. Only
        #: with both is the connection waiting again (a response sent early leaves the body still to come).
        self._received = False
        self._answered = False
        #: Bytes that arrived while waiting, i.e. of the head now arriving (0: none of it has come).
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        waiting = self._waiting
        if waiting:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._waiting or self.transport.is_closing():
            return
        if self._head_bytes > self._max_head:
            # Still no whole head, and more of it than a head may be: refused as h11 refuses it.
            self.logger.warning("%s", _HEAD_TOO_LARGE)
            self._stop_head_timer()
            self.send_400_response(_HEAD_TOO_LARGE)
        elif waiting and self._head_timer is None:
            # The first bytes of a kept-alive connection's next head, and not all of it: timed from now. Started
            # only after parsing, since a head that arrives whole in one read (the common case) would stop it at
            # once: a timer made and cancelled per request for nothing.
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        # The head is in: the request is the app's now; only its body timeout and the app bound it.
        self._stop_head_timer()
        self._head_bytes = 0
        self._received = self._answered = False
        if self._waiting:
            self._waiting = False
            self.guard.busy(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._received = True
        # The request whose message this was (the scope is replaced only when the next one begins): its app reads
        # the body without a timer (request_body.body_within). A body still arriving when the app runs is timed.
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]  # a key of the server's own
        super().on_message_complete()
        self._settle()

    def on_response_complete(self) -> None:
        cast(CoalescingTransport, self.transport).flush()
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if pipelined:  # the next request's cycle starts now: still busy
            return
        self._answered = True
        self._settle()

    def _settle(self) -> None:
        """Waiting again once the request arrived whole and its response went out (h11's IDLE)."""
        if self._waiting or not (self._received and self._answered) or self.transport.is_closing():
            return
        self._waiting = True
        self.guard.idle(self)

    def _head_started(self) -> bool:
        return bool(self._head_bytes)

    def _waiting_for_head(self) -> bool:
        return self._waiting
