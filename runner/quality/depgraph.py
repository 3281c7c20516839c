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
            deps = [d for d in by_name[name].depends if d in by_name and by_name[d].finally_ and d not in seen]
            late[name] = 1 + max((late_column(d, (*seen, name)) for d in deps), default=-1)
        return late[name]

    for name, f in by_name.items():
        if f.finally_:
            depth[name] = last + late_column(name)
    edges = sorted((d, f.description) for f in files for d in f.depends if d in by_name)
    linked = {n for edge in edges for n in edge}

    columns: dict[int, list[str]] = {}
    for name in sorted(by_name):
        columns.setdefault(depth[name], []).append(name)
    position: dict[str, int] = {}
    for column in sorted(columns):
        def key(name: str) -> tuple:
            deps = [position[d] for d in by_name[name].depends if d in position]
            return (name not in linked, sum(deps) / len(deps) if deps else -1, name)

        columns[column].sort(key=key)
        for row, name in enumerate(columns[column]):
            position[name] = row

    nodes: dict[str, Node] = {}
    x = PAD
    for column in sorted(columns):
        width = max(len(n) for n in columns[column]) * CHAR_WIDTH + 20
        for row, name in enumerate(columns[column]):
            nodes[name] = Node(name, column, x, PAD + row * (NODE_HEIGHT + ROW_GAP), width,
                               titles.get(name, name), by_name[name].finally_)
        x += width + COLUMN_GAP
    height = PAD * 2 + max((len(c) for c in columns.values()), default=0) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return Graph(nodes=nodes, edges=edges, width=max(x - COLUMN_GAP + PAD, 2 * PAD), height=max(height, 2 * PAD))


def svg(graph: Graph, href: str = "#file-{name}") -> str:
    """The graph as an inline <svg>: a link per file, an arrow per dependency."""
    parts = [
        (f'<svg class="depgraph" data-chart="depends" xmlns="http://www.w3.org/2000/svg" '
        f'width="{graph.width:.0f}" height="{graph.height:.0f}" viewBox="0 0 {graph.width:.0f} {graph.height:.0f}" '
        'role="img" aria-label="Dependency graph of sql/functions">'),
        ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>'),
    ]
    for source, target in graph.edges:
        a, b = graph.nodes[source], graph.nodes[target]
        x1, y1 = a.x + a.width, a.y + NODE_HEIGHT / 2
        x2, y2 = b.x, b.y + NODE_HEIGHT / 2
        bend = max((x2 - x1) / 2, 20)
        parts.append(
            f'<path class="edge" data-from="{escape(source)}" data-to="{escape(target)}" '
            f'd="M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}" '
            'marker-end="url(#arrow)"/>'
        )
    for node in graph.nodes.values():
        css = "node finally" if node.finally_ else "node"
        parts.append(
            f'<a href="{escape(href.format(name=node.name))}"><g class="{css}" data-name="{escape(node.name)}">'
            f'<title>{escape(node.title)}</title>'
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{node.x + 10:.1f}" y="{node.y + NODE_HEIGHT / 2 + 4:.1f}">{escape(node.name)}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)
