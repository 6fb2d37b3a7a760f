"""The event-flow map's graph from the control API's descriptions, and its left-to-right layout."""

from __future__ import annotations

from typing import Any

from triggerfish.ui.flow import Edge, Graph, flow_graph, lay_out, layers, rate_text

FUNCTIONS: list[dict[str, Any]] = [
    {
        "name": "place_order",
        "triggers": [{"kind": "http", "method": "POST", "path": "/orders"}],
        "settings": {"on_failure": None, "dead_letter": None},
    },
    {
        "name": "charge",
        "triggers": [{"kind": "event", "bus": "default", "pattern": {"type": ["OrderPlaced"]}}],
        "settings": {"dead_letter": "queue:payments-dlq"},
    },
    {"name": "send_emails", "triggers": [{"kind": "queue", "queue": "notifications"}], "settings": {}},
    {"name": "nightly", "triggers": [{"kind": "schedule", "expression": "cron(0 2 * * ? *)"}], "settings": {}},
]
RULES = {"default": [{"id": "charge", "targets": [{"kind": "function", "name": "charge"}]}]}
QUEUES = [{"name": "notifications", "dead_letter": {"name": "notifications.dlq", "depth": 0}}]


def edges(graph: Graph) -> set[tuple[str, str]]:
    return {(graph.nodes[e.source].label, graph.nodes[e.target].label) for e in graph.edges}


def test_declarations_become_edges_from_sources_through_rules_to_functions_and_queues() -> None:
    graph = flow_graph(
        FUNCTIONS,
        RULES,
        QUEUES,
        observed=[("place_order", "bus", "default", 6), ("charge", "queue", "notifications", 3)],
        counts={("place_order", "http"): 12, ("charge", "event"): 6},
        window=60.0,
    )
    assert edges(graph) == {
        ("POST /orders", "place_order"),
        ("bus default", "rule charge"),
        ("rule charge", "charge"),
        ("charge", "queue payments-dlq"),
        ("queue notifications", "send_emails"),
        ("queue notifications", "queue notifications.dlq"),
        ("schedule cron(0 2 * * ? *)", "nightly"),
        ("place_order", "bus default"),
        ("charge", "queue notifications"),
    }
    by_pair = {(graph.nodes[e.source].label, graph.nodes[e.target].label): e for e in graph.edges}
    assert by_pair[("POST /orders", "place_order")].rate == 12.0
    assert by_pair[("rule charge", "charge")].rate == 6.0
    assert by_pair[("queue notifications", "send_emails")].rate is None  # no traffic: no figure
    learned = by_pair[("place_order", "bus default")]
    assert (learned.observed, learned.rate) == (True, 6.0)
    assert by_pair[("charge", "queue payments-dlq")].label == "dead letter"


def test_columns_follow_the_flow_and_a_cycle_does_not_loop_forever() -> None:
    graph = Graph()
    for name in ("a", "b", "c"):
        graph.add("function", name)
    graph.link(Edge("function:a", "function:b"))
    graph.link(Edge("function:b", "function:c"))
    graph.link(Edge("function:c", "function:b"))  # back: b and c call each other
    assert layers(graph) == {"function:a": 0, "function:b": 1, "function:c": 2}
    ring = Graph()
    ring.add("function", "x")
    ring.add("function", "y")
    ring.link(Edge("function:x", "function:y"))
    ring.link(Edge("function:y", "function:x"))  # fed from nowhere: starts at the first by name
    assert layers(ring) == {"function:x": 0, "function:y": 1}


def test_the_layout_places_boxes_in_columns_and_draws_back_edges_below() -> None:
    graph = flow_graph(FUNCTIONS, RULES, QUEUES, observed=[("charge", "bus", "default", 1)])
    layout = lay_out(graph)
    boxes = {box.node.label: box for box in layout.boxes}
    assert boxes["POST /orders"].x < boxes["place_order"].x
    assert boxes["bus default"].x < boxes["rule charge"].x < boxes["charge"].x
    assert all(0 <= box.x < layout.width and 0 <= box.y < layout.height for box in layout.boxes)
    back = [line for line in layout.lines if graph.nodes[line.edge.target].label == "bus default"]
    assert [line.backward for line in back] == [True]
    assert all(line.path.startswith("M") for line in layout.lines)


def test_a_self_edge_or_a_repeated_edge_is_drawn_once_or_not_at_all() -> None:
    graph = Graph()
    graph.add("function", "a")
    graph.add("queue", "q")
    graph.link(Edge("function:a", "function:a"))
    graph.link(Edge("function:a", "queue:q"))
    graph.link(Edge("function:a", "queue:q", rate=3.0))
    assert [(e.source, e.target, e.rate) for e in graph.edges] == [("function:a", "queue:q", None)]


def test_rates_read_per_minute() -> None:
    assert [rate_text(r) for r in (None, 0.25, 9.96, 12.4)] == ["", "0.2/min", "10.0/min", "12/min"]
