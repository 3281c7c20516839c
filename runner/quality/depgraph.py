"""The `-- depends:` graph of sql/functions/ as an inline SVG picture, laid out here (no graphviz needed).

Layered left to right in apply order: a file sits one column right of the deepest file it depends on, so
every arrow points right, from a file to the files that depend on it; `-- runner: finally` files take the
last columns. Within a column, files are ordered by where the files they depend on sit (the barycentre
heuristic), which keeps arrows short and rarely crossing; files with no dependency either way go last.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from runner.project import SqlFile

CHAR_WIDTH = 7.3  # px per character of the 12 px monospace labels (measured in Chromium: 7.22)
NODE_HEIGHT = 26
ROW_GAP = 10
COLUMN_GAP = 64
PAD = 12


@dataclass(frozen=True)
class Node:
    name: str
    column: int
    x: float
    y: float
    width: float
    title: str
    finally_: bool


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]  # (dependency, dependent): the dependency is applied first
    # per edge, where it crosses the columns between its ends: (left x, right x, y) of each
    waypoints: dict[tuple[str, str], list[tuple[float, float, float]]]
    width: float
    height: float


def layout(files: list[SqlFile], titles: dict[str, str] | None = None) -> Graph:
    """Columns and positions of the repeatable files (by description) and the arrows between them."""
    titles = titles or {}
    by_name = {f.description: f for f in files}
    depth: dict[str, int] = {}

    def column_of(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in depth:
            deps = [d for d in by_name[name].depends if d in by_name and d not in seen]
            depth[name] = 1 + max((column_of(d, (*seen, name)) for d in deps), default=-1)
        return depth[name]

    for name in by_name:
        column_of(name)
    # `finally` files run after all others: their columns follow the last one, ordered among themselves.
    last = max([d for n, d in depth.items() if not by_name[n].finally_], default=-1) + 1
    late: dict[str, int] = {}

    def late_column(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in late:
            deps = [
                d for d in by_name[name].depends if d in by_name and by_name[d].finally_ and d not in seen
            ]
            late[name] = 1 + max((late_column(d, (*seen, name)) for d in deps), default=-1)
        return late[name]

    for name, f in by_name.items():
        if f.finally_:
            depth[name] = last + late_column(name)
    edges = sorted((d, f.description) for f in files for d in f.depends if d in by_name)
    linked = {n for edge in edges for n in edge}
    # An arrow spanning several columns gets a waypoint in each column it crosses, holding a row of its
    # own there, so it runs between the boxes, never through one (the Sugiyama layout's dummy nodes).
    previous: dict[str, str] = {}  # waypoint -> what precedes it on its arrow
    chains: dict[tuple[str, str], list[str]] = {}
    for source, target in edges:
        chain, before = [], source
        for column in range(depth[source] + 1, depth[target]):
            point = f"{source}>{target}@{column}"
            depth[point], previous[point] = column, before
            chain.append(point)
            before = point
        chains[(source, target)] = chain

    columns: dict[int, list[str]] = {}
    for name in sorted(depth):
        columns.setdefault(depth[name], []).append(name)
    position: dict[str, int] = {}
    for column in sorted(columns):

        def key(name: str) -> tuple:
            if name in previous:
                return (False, position[previous[name]], name)
            deps = [position[d] for d in by_name[name].depends if d in position]
            return (name not in linked, sum(deps) / len(deps) if deps else -1, name)

        columns[column].sort(key=key)
        for row, name in enumerate(columns[column]):
            position[name] = row

    nodes: dict[str, Node] = {}
    points: dict[str, tuple[float, float, float]] = {}
    x = PAD
    for column in sorted(columns):
        width = max(len(n) for n in columns[column] if n in by_name) * CHAR_WIDTH + 20
        for row, name in enumerate(columns[column]):
            y = PAD + row * (NODE_HEIGHT + ROW_GAP)
            if name in previous:
                points[name] = (x, x + width, y + NODE_HEIGHT / 2)
            else:
                nodes[name] = Node(name, column, x, y, width, titles.get(name, name), by_name[name].finally_)
        x += width + COLUMN_GAP
    height = PAD * 2 + max((len(c) for c in columns.values()), default=0) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    waypoints = {edge: [points[p] for p in chain] for edge, chain in chains.items()}
    return Graph(
        nodes=nodes,
        edges=edges,
        waypoints=waypoints,
        width=max(x - COLUMN_GAP + PAD, 2 * PAD),
        height=max(height, 2 * PAD),
    )


def svg(graph: Graph, href: str = "#file-{name}") -> str:
    """The graph as an inline <svg>: a link per file, an arrow per dependency."""
    parts = [
        (
            f'<svg class="depgraph" data-chart="depends" xmlns="http://www.w3.org/2000/svg" '
            f'width="{graph.width:.0f}" height="{graph.height:.0f}" viewBox="0 0 {graph.width:.0f} {graph.height:.0f}" '
            'role="img" aria-label="Dependency graph of sql/functions">'
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>'
        ),
    ]
    for source, target in graph.edges:
        a, b = graph.nodes[source], graph.nodes[target]
        x, y = a.x + a.width, a.y + NODE_HEIGHT / 2
        d = [f"M {x:.1f} {y:.1f}"]
        for left, right, level in [
            *graph.waypoints.get((source, target), []),
            (b.x, None, b.y + NODE_HEIGHT / 2),
        ]:
            bend = max((left - x) / 2, 20)
            d.append(f"C {x + bend:.1f} {y:.1f}, {left - bend:.1f} {level:.1f}, {left:.1f} {level:.1f}")
            x, y = left, level
            if right is not None:
                d.append(f"L {right:.1f} {level:.1f}")
                x = right
        parts.append(
            f'<path class="edge" data-from="{escape(source)}" data-to="{escape(target)}" '
            f'd="{" ".join(d)}" marker-end="url(#arrow)"/>'
        )
    for node in graph.nodes.values():
        css = "node finally" if node.finally_ else "node"
        parts.append(
            f'<a href="{escape(href.format(name=node.name))}"><g class="{css}" data-name="{escape(node.name)}">'
            f"<title>{escape(node.title)}</title>"
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{node.x + 10:.1f}" y="{node.y + NODE_HEIGHT / 2 + 4:.1f}">{escape(node.name)}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
