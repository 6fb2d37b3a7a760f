"""Who the client is behind a reverse proxy, believed only of proxies the operator names.

    app = ForwardedHeaders(asgi_app, TrustedProxies.parse(["10.0.0.0/8", "127.0.0.1"]))

API Gateway hands a function the headers it adds itself: `x-forwarded-for` (the chain of
addresses, the caller's last), `x-forwarded-proto` and `x-forwarded-port` (what the client
connected with), and the event's `requestContext.http.sourceIp` is the caller's address. Here:

- a request from a **trusted proxy** keeps the `X-Forwarded-*` the proxy sent; the client's address
  is the rightmost address of `X-Forwarded-For` that is not itself a trusted proxy (the left part
  of the chain is whatever the client claimed, so it is not believed);
- a request from **anyone else** has its `X-Forwarded-For` appended to with the peer's address, as
  API Gateway appends, and `-Proto` / `-Port` set to this server's own; the client is the peer.

No proxy is trusted by default: not even loopback, since anything on the machine can connect there
(uvicorn's own forwarded-header handling, which trusts 127.0.0.1, is turned off: gateway/server.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from triggerfish.errors import InvalidInputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port"})


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, values: Iterable[str], *, where: str = "trusted_proxies") -> TrustedProxies:
        """Addresses or networks (`10.0.0.0/8`, `::1`); InvalidInputError naming the bad one."""
        networks: list[Network] = []
        for value in values:
            try:
                networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
            except ValueError:
                raise InvalidInputError(
                    f"{where}: {value!r} is not an IP address or network; give addresses such as 10.0.0.7,"
                    " networks such as 10.0.0.0/8 or fd00::/8"
                ) from None
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_of(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer, or behind trusted proxies the nearest untrusted hop they name."""
        if forwarded_for is None or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


class ForwardedHeaders:
    """ASGI middleware: sets `scope["client"]` and the `X-Forwarded-*` headers as described above."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies | None = None) -> None:
        self.app = app
        self.trusted = trusted or TrustedProxies()
        # The X-Forwarded-Proto and -Port values of this server's own (scheme, port): a few, made once each.
        self._own: dict[tuple[Any, Any], tuple[bytes, bytes]] = {}

    def close_streams(self) -> None:
        """The wrapped app's, which GatewayServer.stop calls to end long-lived responses."""
        close = getattr(self.app, "close_streams", None)
        if callable(close):
            close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope) -> Scope:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        given: dict[bytes, bytes] = {}
        rest: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name in _FORWARDED:
                # Several headers of one name are one list, as HTTP says.
                given[name] = value if name not in given else given[name] + b"," + value
            else:
                rest.append((name, value))
        client = scope.get("client") or ("", 0)
        peer = str(client[0])
        server = scope.get("server") or ("", 0)
        scheme_and_port = (scope.get("scheme", "http"), server[1])
        own = self._own.get(scheme_and_port)
        if own is None:
            own = self._own[scheme_and_port] = _own_proto_and_port(*scheme_and_port)
        own_proto, own_port = own
        chain = given.get(b"x-forwarded-for")
        if self.trusted.trusts(peer):
            forwarded_for = chain if chain is not None else peer.encode("latin-1")
            proto = given.get(b"x-forwarded-proto", own_proto)
            port = given.get(b"x-forwarded-port", own_port)
            address = self.trusted.client_of(peer, forwarded_for.decode("latin-1"))
        else:
            forwarded_for = peer.encode("latin-1") if chain is None else chain + b", " + peer.encode("latin-1")
            proto, port, address = own_proto, own_port, peer
        rest += [(b"x-forwarded-for", forwarded_for), (b"x-forwarded-proto", proto), (b"x-forwarded-port", port)]
        scheme = proto.decode("latin-1") if proto in (b"http", b"https") else scope.get("scheme", "http")
        return dict(scope, headers=rest, client=(address, client[1]), scheme=scheme)


def _own_proto_and_port(scheme: Any, port: Any) -> tuple[bytes, bytes]:
    """`X-Forwarded-Proto` and `-Port` for a request that came to this server on `scheme` and `port`."""
    proto = str(scheme).encode("latin-1")
    return proto, str(port or (443 if proto == b"https" else 80)).encode("latin-1")
