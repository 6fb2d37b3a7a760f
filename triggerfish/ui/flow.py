"""The event-flow map: the app's declarations as a graph, laid out left to right (pure: no I/O, no drawing).

    graph = flow_graph(functions, rules_by_bus, queues, observed=[("place_order", "bus", "default", 4)],
                       counts={("place_order", "http"): 12}, window=300.0)
    layout = lay_out(graph)         # nodes with x, y; edges with an SVG path and a label place

What is drawn, and from where:

- a function's triggers (GET /functions): an HTTP route, a schedule, a queue
  or a topic flows into the function;
- a bus's rules (GET /buses/{bus}/rules): bus → rule → each target (a
  function, queue, topic, another bus or a webhook);
- a function's destinations (on_success, on_failure, dead_letter) and a
  queue's dead-letter queue (GET /queues);
- what handlers were seen doing in recent traces (a publish to a bus, a send
  to a queue): the code's own calls are not declared anywhere, so the map
  learns them from the spans and draws them dashed.

Rates on the edges into functions are the function's attempts by trigger
kind over the window (its invocation records); rates on observed edges are
the spans seen. An edge without a figure had no traffic in the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NODE_WIDTH = 190
NODE_HEIGHT = 34
COLUMN_GAP = 80
ROW_GAP = 18
MARGIN = 16
#: What each trigger kind's node is (the kind the invocation records name as the trigger).
_SOURCE_KINDS = {"http": "route", "schedule": "schedule", "queue": "queue", "topic": "topic"}


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: str  # route, schedule, bus, rule, function, queue, topic, webhook, destination
    label: str


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    #: Per minute over the window; None: no figure for this edge (not counted, or not seen).
    rate: float | None = None
    #: Learned from traces (or a destination taken on failure), not declared: drawn dashed.
    observed: bool = False
    label: str = ""


@dataclass(slots=True)
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, kind: str, name: str, label: str | None = None) -> str:
        node_id = f"{kind}:{name}"
        self.nodes.setdefault(node_id, Node(node_id, kind, label or name))
        return node_id

    def link(self, edge: Edge) -> None:
        if edge.source != edge.target and not any(
            e.source == edge.source and e.target == edge.target for e in self.edges
        ):
            self.edges.append(edge)


def _rate(count: int, window: float) -> float | None:
    return count * 60.0 / window if count and window > 0 else None


def flow_graph(
    functions: Sequence[Mapping[str, Any]],
    rules: Mapping[str, Sequence[Mapping[str, Any]]],
    queues: Sequence[Mapping[str, Any]] = (),
    *,
    observed: Iterable[tuple[str, str, str, int]] = (),
    counts: Mapping[tuple[str, str], int] | None = None,
    window: float = 300.0,
) -> Graph:
    """The graph of the control API's descriptions: `functions` as GET /functions lists them, `rules` by bus,
    `queues` as GET /queues lists them, `observed` (function, "bus" | "queue" | "topic", name, count) from spans,
    `counts` of attempts by (function, trigger kind)."""
    counts = counts or {}
    graph = Graph()
    for function in functions:
        name = str(function["name"])
        target = graph.add("function", name)
        for trigger in function.get("triggers", ()):
            kind = str(trigger.get("kind"))
            rate = _rate(counts.get((name, kind), 0), window)
            if kind == "http":
                source = graph.add("route", f"{trigger['method']} {trigger['path']}")
            elif kind == "schedule":
                source = graph.add("schedule", f"{name} {trigger['expression']}", f"schedule {trigger['expression']}")
            elif kind in ("queue", "topic"):
                source = graph.add(kind, str(trigger[kind]), f"{kind} {trigger[kind]}")
            elif kind == "event":
                continue  # drawn from the bus's rules, which @app.on_event declares
            else:
                described = str(trigger.get("description", kind))
                source = graph.add("source", described, described)
            graph.link(Edge(source, target, rate))
        settings = function.get("settings", {})
        for setting in ("on_success", "on_failure", "dead_letter"):
            destination = settings.get(setting)
            if destination:
                kind, _, dest_name = str(destination).partition(":")
                destination_id = graph.add(kind, dest_name, f"{kind} {dest_name}" if kind != "function" else None)
                graph.link(Edge(target, destination_id, observed=True, label=setting.replace("_", " ")))
    for bus, bus_rules in sorted(rules.items()):
        bus_id = graph.add("bus", bus, f"bus {bus}")
        for rule in bus_rules:
            rule_id = graph.add("rule", f"{bus}/{rule['id']}", f"rule {rule['id']}")
            graph.link(Edge(bus_id, rule_id))
            for target in rule.get("targets", ()):
                kind = str(target["kind"])
                shown = None if kind == "function" else f"{kind} {target['name']}"
                target_id = graph.add(kind, str(target["name"]), shown)
                rate = _rate(counts.get((str(target["name"]), "event"), 0), window) if kind == "function" else None
                graph.link(Edge(rule_id, target_id, rate))
    for queue in queues:
        dead = queue.get("dead_letter") or (queue.get("config") or {}).get("dead_letter")
        if isinstance(dead, Mapping):
            dead = dead.get("queue") or dead.get("name")
        if dead:
            source_id = graph.add("queue", str(queue["name"]), f"queue {queue['name']}")
            graph.link(Edge(source_id, graph.add("queue", str(dead), f"queue {dead}"), label="dead letters"))
    for producer, kind, destination_name, count in observed:
        destination_id = graph.add(kind, destination_name, f"{kind} {destination_name}")
        graph.link(Edge(graph.add("function", producer), destination_id, _rate(count, window), True))
    return graph


@dataclass(frozen=True, slots=True)
class Box:
    node: Node
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Line:
    edge: Edge
    path: str
    label_x: float
    label_y: float
    backward: bool


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: list[Box]
    lines: list[Line]
    width: float
    height: float
    node_width: float = NODE_WIDTH
    node_height: float = NODE_HEIGHT


def layers(graph: Graph) -> dict[str, int]:
    """Each node's column: its shortest distance from a node nothing flows into (cycles are cut where first met)."""
    incoming = dict.fromkeys(graph.nodes, 0)
    outgoing: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
    for edge in graph.edges:
        incoming[edge.target] += 1
        outgoing[edge.source].append(edge.target)
    column: dict[str, int] = {}
    frontier = sorted(n for n, count in incoming.items() if count == 0)
    while len(column) < len(graph.nodes):
        if not frontier:
            # Every node left is on a cycle fed from nowhere: start it from its first node by name.
            frontier = [min(n for n in graph.nodes if n not in column)]
        for node_id in frontier:
            column.setdefault(node_id, 0)
        queue = list(frontier)
        while queue:
            current = queue.pop(0)
            for nxt in sorted(outgoing[current]):
                if nxt not in column:
                    column[nxt] = column[current] + 1
                    queue.append(nxt)
        frontier = []
    return column


def lay_out(graph: Graph) -> Layout:
    """Columns by `layers`, rows in each column by kind then name; edges as curves from box to box."""
    column = layers(graph)
    by_column: dict[int, list[Node]] = {}
    for node in graph.nodes.values():
        by_column.setdefault(column[node.id], []).append(node)
    boxes: dict[str, Box] = {}
    for index, nodes in sorted(by_column.items()):
        for row, node in enumerate(sorted(nodes, key=lambda n: (n.kind, n.label))):
            x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP)
            y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
            boxes[node.id] = Box(node, x, y)
    lines = [_line(edge, boxes[edge.source], boxes[edge.target]) for edge in graph.edges]
    width = max((b.x for b in boxes.values()), default=0) + NODE_WIDTH + MARGIN
    height = max((b.y for b in boxes.values()), default=0) + NODE_HEIGHT + MARGIN + 40
    return Layout(list(boxes.values()), lines, width, height)


def _line(edge: Edge, source: Box, target: Box) -> Line:
    half = NODE_HEIGHT / 2
    if target.x > source.x:
        x1, y1 = source.x + NODE_WIDTH, source.y + half
        x2, y2 = target.x, target.y + half
        bend = (x2 - x1) / 2
        path = f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}"
        return Line(edge, path, (x1 + x2) / 2, (y1 + y2) / 2 - 4, backward=False)
    # Back to an earlier (or the same) column: loop below the boxes so the curve does not cross them.
    x1, y1 = source.x + NODE_WIDTH / 2, source.y + NODE_HEIGHT
    x2, y2 = target.x + NODE_WIDTH / 2, target.y + NODE_HEIGHT
    dip = max(y1, y2) + 30
    path = f"M{x1:g},{y1:g} C{x1:g},{dip:g} {x2:g},{dip:g} {x2:g},{y2:g}"
    return Line(edge, path, (x1 + x2) / 2, dip - 6, backward=True)


def rate_text(rate: float | None) -> str:
    if rate is None:
        return ""
    return f"{rate:.1f}/min" if rate < 10 else f"{rate:.0f}/min"
