"""The route table: precedence, path parameters, greedy paths, 404 against 405, and bad declarations."""

from __future__ import annotations

import pytest

from triggerfish import App
from triggerfish.errors import DeclarationError
from triggerfish.gateway.routes import MethodNotAllowed, Route, RouteMatch, RouteTable

TABLE = RouteTable(
    [
        Route("GET", "/", "home"),
        Route("GET", "/orders", "list_orders"),
        Route("POST", "/orders", "create_order"),
        Route("GET", "/orders/{id}", "get_order"),
        Route("DELETE", "/orders/{id}", "delete_order"),
        Route("GET", "/orders/latest", "latest_order"),
        Route("GET", "/orders/{id}/lines/{line}", "get_line"),
        Route("ANY", "/files/{path+}", "files"),
        Route("PUT", "/files/{path+}", "upload"),
        Route("GET", "/files/special/{name}", "special"),
        Route("ANY", "/{proxy+}", "fallback"),
        Route("ANY", "/any", "any"),
    ]
)

# (method, raw path, function expected, path parameters expected)
MATCHES = [
    ("GET", "/", "home", {}),
    ("GET", "/orders", "list_orders", {}),
    ("POST", "/orders", "create_order", {}),
    ("GET", "/orders/42", "get_order", {"id": "42"}),
    ("DELETE", "/orders/42", "delete_order", {"id": "42"}),
    # a literal segment beats a parameter at the same place
    ("GET", "/orders/latest", "latest_order", {}),
    ("GET", "/orders/7/lines/2", "get_line", {"id": "7", "line": "2"}),
    # parameter values are percent-decoded after the split, so an encoded slash stays in one value
    ("GET", "/orders/a%2Fb", "get_order", {"id": "a/b"}),
    ("GET", "/orders/caf%C3%A9", "get_order", {"id": "café"}),
    # invalid UTF-8 in a value becomes U+FFFD instead of failing
    ("GET", "/orders/%FF", "get_order", {"id": "\ufffd"}),
    ("GET", "/files/a/b/c.txt", "files", {"path": "a/b/c.txt"}),
    # the request's own method beats ANY at the same path
    ("PUT", "/files/a/b", "upload", {"path": "a/b"}),
    # a route without a greedy parameter beats a greedy one
    ("GET", "/files/special/x", "special", {"name": "x"}),
    ("POST", "/files/special/x", "files", {"path": "special/x"}),
    ("PATCH", "/any", "any", {}),
    # the greedy catch-all takes what nothing else does, whatever the method
    ("GET", "/elsewhere/deep/down", "fallback", {"proxy": "elsewhere/deep/down"}),
    ("PATCH", "/orders/42", "fallback", {"proxy": "orders/42"}),
]


@pytest.mark.parametrize(("method", "path", "function", "parameters"), MATCHES)
def test_a_request_goes_to_the_most_specific_route(
    method: str, path: str, function: str, parameters: dict[str, str]
) -> None:
    found = TABLE.match(method, path)
    assert isinstance(found, RouteMatch), found
    assert found.route.function == function
    assert found.path_parameters == parameters


def test_the_route_key_names_method_and_template() -> None:
    found = TABLE.match("GET", "/orders/42")
    assert isinstance(found, RouteMatch)
    assert found.route.route_key == "GET /orders/{id}"


NO_FALLBACK = RouteTable([r for r in TABLE.routes if r.function != "fallback"])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/orders", ("GET", "POST")),
        ("PUT", "/orders/42", ("DELETE", "GET")),
        ("POST", "/", ("GET",)),
        ("HEAD", "/orders/7/lines/2", ("GET",)),
    ],
)
def test_a_path_served_only_under_other_methods_is_405_with_allow(
    method: str, path: str, allow: tuple[str, ...]
) -> None:
    assert NO_FALLBACK.match(method, path) == MethodNotAllowed(allow)


@pytest.mark.parametrize(
    "path",
    [
        "/nothing",
        "/orders/42/extra",
        "/orders/",  # an empty parameter value matches no {id}
        "/files",  # a greedy parameter needs at least one segment
        "/files/",
        "",
        "orders",
        "//orders",
    ],
)
def test_a_path_no_route_matches_is_404(path: str) -> None:
    assert NO_FALLBACK.match("GET", path) is None


def test_the_table_is_built_from_the_apps_http_triggers() -> None:
    app = App("t")

    @app.http("GET", "/a/{x}")
    def a(event: object, context: object) -> None: ...

    @app.function
    def not_http(event: object, context: object) -> None: ...

    table = RouteTable.from_specs(app.functions)
    assert table.routes == (Route("GET", "/a/{x}", "a"),)
    assert len(table) == 1


@pytest.mark.parametrize("path", ["/-/health", "/-/api/v1/x", "/-"])
def test_routes_under_the_platforms_prefix_are_refused(path: str) -> None:
    with pytest.raises(DeclarationError, match="reserves"):
        RouteTable([Route("GET", path, "mine")])


def test_two_routes_that_match_the_same_requests_are_refused_naming_both() -> None:
    with pytest.raises(DeclarationError, match=r"'GET /a/\{x\}' \(one\) and 'GET /a/\{y\}' \(two\)"):
        RouteTable([Route("GET", "/a/{x}", "one"), Route("GET", "/a/{y}", "two")])
