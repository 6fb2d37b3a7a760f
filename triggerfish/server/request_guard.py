"""Which Host and Origin a platform endpoint answers: the rules against DNS rebinding and cross-site requests.

    rules = RequestRules.local(bound="127.0.0.1", hosts=["dev.internal"])   # triggerfish dev
    rules = RequestRules.serving(hosts=["api.example.com"])                 # triggerfish serve
    refusal = rules.check(scope["headers"])    # None, or the 403 to answer

A page the developer visits can make their browser send requests to
`localhost:8080`. Two rules keep it from driving `triggerfish dev`'s control
API (the third, a JSON content type on requests that change anything, is in
operations.py):

- **Host.** The Host header must name the server: under `dev`, `localhost`,
  `127.0.0.1`, `[::1]`, the address it is bound to and any `--allowed-host`.
  A page that points a DNS name of its own at 127.0.0.1 (DNS rebinding)
  sends its own name, and is refused. `serve` allows any host by default (it
  sits behind proxies and load balancers, and keys guard it), or only those listed.
- **Origin.** A browser names the page's origin on cross-site requests; one
  present must be the server's own (the same host and port as the Host
  header) or listed with `--allowed-origin`. `Origin: null` (sandboxed pages,
  files) is refused.

Patterns for hosts: a name (`api.example.com`, any case), `*.example.com` for
its subdomains, or `*` for any. Origins are `scheme://host[:port]`, or `*`.
The rules apply to the platform's endpoints (`/-/...`) only; an app's own
routes are the app's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from starlette.types import Receive, Scope, Send

from triggerfish.errors import InvalidInputError
from triggerfish.server.errors import error_response

#: The names a loopback server answers to under `triggerfish dev`.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Refusal(NamedTuple):
    """A request the rules refuse: the code and a message saying which rule and how to allow it."""

    code: str
    message: str
    detail: dict[str, str]


@dataclass(frozen=True, slots=True)
class RequestRules:
    """The Host names and Origins a server's platform endpoints accept.

    `hosts`: host patterns (None: any host); `origins`: origins allowed beside
    the server's own. Build with `local()` (dev) or `serving()` (serve).
    """

    hosts: tuple[str, ...] | None
    origins: tuple[str, ...] = ()
    #: What the refusals tell the user to pass (the command's option names).
    host_option: str = "--allowed-host"
    origin_option: str = "--allowed-origin"

    @classmethod
    def local(cls, bound: str = "127.0.0.1", hosts: Iterable[str] = (), origins: Iterable[str] = ()) -> RequestRules:
        """`triggerfish dev`'s rules: loopback names, the bound address, and `hosts`."""
        names = [*LOOPBACK_HOSTS, *([] if bound in ("0.0.0.0", "::", "") else [bound]), *hosts]
        return cls(tuple(dict.fromkeys(check_host_pattern(h) for h in names)), check_origins(origins))

    @classmethod
    def serving(cls, hosts: Iterable[str] | None = None, origins: Iterable[str] = ()) -> RequestRules:
        """`triggerfish serve`'s rules: any host unless `hosts` lists them."""
        listed = None if hosts is None else tuple(check_host_pattern(h) for h in hosts)
        return cls(listed or None, check_origins(origins))

    def check(self, headers: Sequence[tuple[bytes, bytes]]) -> Refusal | None:
        """The refusal for a request with these (ASGI) headers, or None when it may proceed."""
        host_header = origin = None
        for name, value in headers:
            if name == b"host":
                host_header = value.decode("latin-1").strip()
            elif name == b"origin":
                origin = value.decode("latin-1").strip()
        host, port = split_host(host_header or "")
        if self.hosts is not None and not any(_host_matches(pattern, host) for pattern in self.hosts):
            shown = ", ".join(f"[{h}]" if ":" in h else h for h in self.hosts)
            named = repr(host_header) if host_header else "no host"
            return Refusal(
                "HostNotAllowed",
                f"the Host header names {named}, which this server does not answer to (it answers to {shown});"
                f" to allow that name, start the server with {self.host_option} {host or 'NAME'}",
                {"host": host_header or ""},
            )
        if origin is not None and not self._origin_allowed(origin, host, port):
            return Refusal(
                "OriginNotAllowed",
                f"a page at {origin!r} may not call this server: a browser's request must come from the server's"
                f" own origin (the host and port of its Host header); to allow that page, start the server with"
                f" {self.origin_option} {origin if origin != 'null' else 'ORIGIN'}",
                {"origin": origin},
            )
        return None

    def _origin_allowed(self, origin: str, host: str, port: int | None) -> bool:
        normalized = origin.lower().rstrip("/")
        if normalized == "null":
            return False
        if "*" in self.origins or normalized in self.origins:
            return True
        scheme, _, rest = normalized.partition("://")
        if scheme not in _DEFAULT_PORTS or not rest or "/" in rest:
            return False
        origin_host, origin_port = split_host(rest)
        if origin_host != host:
            return False
        default = _DEFAULT_PORTS[scheme]
        # A Host header without a port means the origin scheme's default port.
        return (origin_port or default) == (port or default)

    async def guard(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request 403 when the rules refuse it; True when it was answered."""
        refusal = self.check(scope.get("headers", ()))
        if refusal is None:
            return False
        details: dict[str, Any] = dict(refusal.detail)
        response = error_response(403, refusal.code, refusal.message, **details)
        await response(scope, receive, send)
        return True


def split_host(text: str) -> tuple[str, int | None]:
    """`host[:port]` (IPv6 in brackets) as a lowercase host and a port (None when absent or not a number)."""
    text = text.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    return host.rstrip("."), port


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def check_host_pattern(pattern: str) -> str:
    """A host pattern, normalized (lowercase, no brackets); InvalidInputError saying what one looks like."""
    text = pattern.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-:*_")
    if not text or not set(text) <= allowed or ("*" in text and text != "*" and not text.startswith("*.")):
        raise InvalidInputError(
            f"allowed host {pattern!r} is not a host name: give a name (api.example.com), an address"
            " (10.0.0.5, ::1), *.example.com for its subdomains, or * for any"
        )
    return text


def check_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """Origins, normalized; InvalidInputError for one that is not `scheme://host[:port]` or `*`."""
    checked = []
    for origin in origins:
        text = origin.strip().lower().rstrip("/")
        scheme, _, rest = text.partition("://")
        if text != "*" and (scheme not in _DEFAULT_PORTS or not rest or "/" in rest):
            raise InvalidInputError(
                f"allowed origin {origin!r} is not an origin: give scheme://host[:port]"
                " (http://localhost:3000, https://tools.example.com), or * for any"
            )
        checked.append(text)
    return tuple(checked)
