"""Small server-side SVG charts for the dashboard: no script, no network, just markup a browser draws.

Every drawn mark carries class="mark" and a <title> (the browser's tooltip), so a test can count what
was drawn and a person can hover for exact numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family:inherit"


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    values: Sequence[float]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _svg(name: str, width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def stacked_bars_with_line(
    name: str,
    labels: Sequence[str],
    stacks: Sequence[Series],
    line: Sequence[float | None],
    line_label: str,
    width: int = 960,
    height: int = 300,
) -> str:
    """Stacked columns (left axis: counts) and a line (right axis: 0-100 %), one column per label."""
    left, right, top, bottom = 48, 48, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    totals = [sum(s.values[i] for s in stacks) for i in range(len(labels))]
    ymax = _nice_max(max(totals, default=0))
    slot = plot_w / n
    bar_w = max(slot * 0.68, 1)
    body = []
    for k in range(5):  # grid and left axis
        y = top + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        body.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" class="axis">{_fmt(ymax * k / 4)}</text>'
        )
        body.append(f'<text x="{width - right + 8}" y="{y + 4:.1f}" class="axis">{25 * k}%</text>')
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for s in stacks:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / ymax
            y -= h
            body.append(
                f'<rect class="mark bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'rx="2" fill="{s.color}"><title>{escape(label)}: {_fmt(value)} {escape(s.label)}</title></rect>'
            )
        if i % max(1, n // 10) == 0 or i == n - 1:
            body.append(
                f'<text x="{left + slot * i + slot / 2:.1f}" y="{height - 12}" text-anchor="middle" '
                f'class="axis">{escape(label)}</text>'
            )
    points = [
        (left + slot * i + slot / 2, top + plot_h - plot_h * v / 100)
        for i, v in enumerate(line)
        if v is not None
    ]
    if points:
        d = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(points))
        body.append(
            f'<path class="mark line" d="{d}" fill="none" stroke="#4f46e5" stroke-width="2.5" '
            f'stroke-linejoin="round" stroke-linecap="round"><title>{escape(line_label)}</title></path>'
        )
        for (x, y), (i, v) in zip(points, [(i, v) for i, v in enumerate(line) if v is not None], strict=True):
            body.append(
                f'<circle class="mark dot" cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="#fff" stroke="#4f46e5" '
                f'stroke-width="2"><title>{escape(labels[i])}: {v:.1f}% {escape(line_label)}</title></circle>'
            )
    return _svg(name, width, height, body, f"{', '.join(s.label for s in stacks)} and {line_label} per day")


def horizontal_bars(
    name: str,
    rows: Sequence[tuple[str, float, str]],
    color: str,
    unit: str = "%",
    maximum: float | None = None,
    width: int = 460,
) -> str:
    """One labelled bar per row: (label, value, caption shown after the bar)."""
    row_h, left, right = 44, 110, 130
    height = max(len(rows), 1) * row_h + 8
    top = max((v for _, v, _ in rows), default=0)
    scale = maximum if maximum is not None else _nice_max(top)
    plot_w = width - left - right
    body = []
    for i, (label, value, caption) in enumerate(rows):
        y = 8 + i * row_h
        w = plot_w * min(value, scale) / scale if scale else 0
        body.append(
            f'<text x="{left - 12}" y="{y + 21}" text-anchor="end" class="label">{escape(label)}</text>'
        )
        body.append(f'<rect x="{left}" y="{y + 6}" width="{plot_w}" height="22" rx="6" class="track"/>')
        body.append(
            f'<rect class="mark bar" x="{left}" y="{y + 6}" width="{max(w, 2):.1f}" height="22" rx="6" '
            f'fill="{color}"><title>{escape(label)}: {value:.2f}{unit} ({escape(caption)})</title></rect>'
        )
        body.append(
            f'<text x="{left + plot_w + 10}" y="{y + 21}" class="value">{value:.1f}{unit}'
            f'<tspan class="muted" dx="6">{escape(caption)}</tspan></text>'
        )
    return _svg(name, width, height, body, "per " + name)


def donut(
    name: str, parts: Sequence[tuple[str, float, str]], center_value: str, center_label: str, size: int = 220
) -> str:
    """A ring of (label, value, color) parts with a figure in the middle."""
    cx = cy = size / 2
    r, thickness = size / 2 - 14, 30
    total = sum(v for _, v, _ in parts)
    body = [f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="#eef2f7" stroke-width="{thickness}"/>']
    angle = -math.pi / 2
    for label, value, color in parts:
        if value <= 0 or total <= 0:
            continue
        sweep = 2 * math.pi * value / total
        if sweep >= 2 * math.pi - 1e-9:
            sweep = 2 * math.pi - 1e-4
        x1, y1 = cx + r * math.cos(angle), cy + r * math.sin(angle)
        x2, y2 = cx + r * math.cos(angle + sweep), cy + r * math.sin(angle + sweep)
        large = 1 if sweep > math.pi else 0
        body.append(
            f'<path class="mark arc" d="M{x1:.2f},{y1:.2f} A{r},{r} 0 {large} 1 {x2:.2f},{y2:.2f}" fill="none" '
            f'stroke="{color}" stroke-width="{thickness}"><title>{escape(label)}: {_fmt(value)} '
            f"({100 * value / total:.1f}%)</title></path>"
        )
        angle += sweep
    body.append(
        f'<text x="{cx}" y="{cy + 4}" text-anchor="middle" class="donut-value">{escape(center_value)}</text>'
    )
    body.append(
        f'<text x="{cx}" y="{cy + 26}" text-anchor="middle" class="axis">{escape(center_label)}</text>'
    )
    return _svg(name, size, size, body, "status mix")


def columns(
    name: str, rows: Sequence[tuple[str, float]], color: str, width: int = 460, height: int = 230
) -> str:
    """A histogram: one column per (label, count), labels under the columns."""
    left, top, bottom = 8, 24, 40
    n = max(len(rows), 1)
    slot = (width - 2 * left) / n
    ymax = _nice_max(max((v for _, v in rows), default=0))
    plot_h = height - top - bottom
    body = [f'<line x1="{left}" x2="{width - left}" y1="{top + plot_h}" y2="{top + plot_h}" class="grid"/>']
    for i, (label, value) in enumerate(rows):
        h = plot_h * value / ymax
        x = left + slot * i + slot * 0.14
        if value > 0:
            body.append(
                f'<rect class="mark bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.72:.1f}" '
                f'height="{h:.1f}" rx="4" fill="{color}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            )
        body.append(
            f'<text x="{x + slot * 0.36:.1f}" y="{top + plot_h - h - 6:.1f}" text-anchor="middle" '
            f'class="value">{_fmt(value)}</text>'
        )
        body.append(
            f'<text x="{x + slot * 0.36:.1f}" y="{height - 16}" text-anchor="middle" class="axis">'
            f"{escape(label)}</text>"
        )
    return _svg(name, width, height, body, "distribution")
