"""The route table: which function serves a request, compiled from the app's `@app.http` triggers.

    table = RouteTable.from_specs(app.functions)
    found = table.match("GET", "/orders/42")
    if isinstance(found, RouteMatch): found.route.function, found.path_parameters  # "get_order", {"id": "42"}
    elif isinstance(found, MethodNotAllowed): found.allow                          # ("POST",)
    else: ...                                                                      # None: 404

Pure: no I/O. Precedence follows API Gateway: the most specific path wins
(literal segments beat `{name}` parameters, which beat a greedy
`{proxy+}`), and at the same path a route for the request's method beats
an `ANY` route. A path that matches only under other methods is a 405 with
those methods in `Allow`; a path no route matches is a 404.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from triggerfish.errors import DeclarationError
from triggerfish.model import FunctionSpec, HttpTrigger

#: Paths under this prefix belong to the platform (`/-/health`, `/-/events`, ...), never to user routes.
RESERVED_PREFIX = "/-/"
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One `@app.http` trigger: `method` ("GET", ..., or "ANY") and `path` template, served by `function`."""

    method: str
    path: str
    function: str
    #: The trigger's `auth=` (None: public; see triggerfish.http_auth); the gateway's `authorize` hook checks it.
    auth: Any = None
    #: API Gateway's name for the route, e.g. `GET /orders/{id}`; it goes into the event's `routeKey`. Made once,
    #: not per request (the gateway reads it twice for each).
    route_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "route_key", f"{self.method} {self.path}")


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    #: Decoded values of the path's parameters, by name (`{"id": "42"}`); empty for a literal path.
    path_parameters: dict[str, str]


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    #: The methods routes at this path accept, sorted, for the `Allow` header.
    allow: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Compiled:
    route: Route
    #: For each segment of the template: a literal, or None for a parameter.
    literals: tuple[str | None, ...]
    names: tuple[str, ...]
    #: The greedy parameter's name when the template ends in `{name+}`.
    greedy: str | None
    #: Sorts most specific first: greedy routes last, then literals before parameters before the greedy
    #: parameter, segment by segment.
    rank: tuple[int, ...]


class RouteTable:
    """The routes of one app version; `match()` picks the route for a request."""

    def __init__(self, routes: Iterable[Route]) -> None:
        compiled = [_compile(route) for route in routes]
        seen: dict[tuple[str, tuple[str | None, ...], bool], Route] = {}
        for item in compiled:
            key = (item.route.method, item.literals, item.greedy is not None)
            if key in seen:
                raise DeclarationError(
                    f"routes {seen[key].route_key!r} ({seen[key].function}) and {item.route.route_key!r}"
                    f" ({item.route.function}) match the same requests; change one of them"
                )
            seen[key] = item.route
        self.routes: tuple[Route, ...] = tuple(item.route for item in compiled)
        # Literal paths are the common case and the fastest to find: one dict lookup.
        self._static: dict[str, dict[str, Route]] = {}
        dynamic: list[_Compiled] = []
        for item in compiled:
            if item.greedy is None and None not in item.literals:
                self._static.setdefault(item.route.path, {})[item.route.method] = item.route
            else:
                dynamic.append(item)
        # At equal rank a route for one method comes before ANY, so the request's own method wins.
        self._dynamic = sorted(dynamic, key=lambda item: (item.rank, item.route.method == "ANY"))

    @classmethod
    def from_specs(cls, specs: Mapping[str, FunctionSpec]) -> RouteTable:
        """The table of every HttpTrigger of the app's functions (`app.functions`)."""
        routes = [
            Route(trigger.method, trigger.path, spec.name, trigger.auth)
            for spec in specs.values()
            for trigger in spec.triggers
            if isinstance(trigger, HttpTrigger)
        ]
        return cls(routes)

    def __len__(self) -> int:
        return len(self.routes)

    def match(self, method: str, raw_path: str) -> RouteMatch | MethodNotAllowed | None:
        """The route for `method` and `raw_path` (still percent-encoded, without the query string).

        Matching is on the encoded path split at `/`, so an encoded slash (`%2F`) stays inside one
        parameter; parameter values are then percent-decoded (invalid UTF-8 becomes U+FFFD).
        """
        static = self._static.get(raw_path)
        if static is not None:
            route = static.get(method) or static.get("ANY")
            if route is not None:
                return RouteMatch(route, {})
        segments = raw_path[1:].split("/") if raw_path.startswith("/") else None
        allow: set[str] = set(static or ())
        if segments is not None:
            for item in self._dynamic:
                parameters = _bind(item, segments)
                if parameters is None:
                    continue
                if item.route.method in (method, "ANY"):
                    return RouteMatch(item.route, parameters)
                allow.add(item.route.method)
        return MethodNotAllowed(tuple(sorted(allow))) if allow else None


def _compile(route: Route) -> _Compiled:
    if route.path == RESERVED_PREFIX[:-1] or route.path.startswith(RESERVED_PREFIX):
        raise DeclarationError(
            f"function {route.function!r}: the path {route.path!r} is under {RESERVED_PREFIX!r}, which the"
            " platform reserves for its own endpoints; choose another path"
        )
    if route.path == "/":
        return _Compiled(route, ("",), (), None, (0, 0))
    literals: list[str | None] = []
    names: list[str] = []
    rank: list[int] = []
    greedy: str | None = None
    for segment in route.path[1:].split("/"):
        found = _PARAMETER.fullmatch(segment)
        if found is None:
            literals.append(segment)
            rank.append(0)
        elif found.group(2):
            greedy = found.group(1)
            rank.append(2)
        else:
            literals.append(None)
            names.append(found.group(1))
            rank.append(1)
    return _Compiled(route, tuple(literals), tuple(names), greedy, (1 if greedy else 0, *rank))


def _bind(item: _Compiled, segments: list[str]) -> dict[str, str] | None:
    fixed = len(item.literals)
    if item.greedy is None:
        if len(segments) != fixed:
            return None
    elif len(segments) <= fixed:
        return None
    parameters: dict[str, str] = {}
    names = iter(item.names)
    for literal, segment in zip(item.literals, segments, strict=False):
        if literal is None:
            if not segment:
                return None
            parameters[next(names)] = unquote(segment, errors="replace")
        elif literal != segment:
            return None
    if item.greedy is not None:
        rest = "/".join(segments[fixed:])
        if not rest:
            return None
        parameters[item.greedy] = unquote(rest, errors="replace")
    return parameters
