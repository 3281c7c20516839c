"""Print a results file of `python -m bench` as Markdown tables, one per group (for docs/performance.md).

python -m bench.markdown bench/results/2026-11-27.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit: ms under 10 s, seconds above; throughput units as given."""
    if value is None or math.isnan(value):
        return "-"
    if unit != "ms":
        return f"{value:,.0f} {unit}"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{value:,.1f} ms" if value >= 10 else f"{value:,.3f} ms"


def tables(data: dict) -> str:
    out = []
    groups: dict[str, list[dict]] = {}
    for item in data["benchmarks"]:
        groups.setdefault(item.get("group", "?"), []).append(item)
    for group, items in groups.items():
        out.append(f"\n**{group}**\n")
        out.append("| Benchmark | Median | Min-max | Runs | Baseline (same run) | Ratio | Aim |")
        out.append("| --- | ---: | ---: | ---: | --- | ---: | --- |")
        for i in items:
            unit = i.get("unit", "ms")
            aim = "" if i.get("aim") is None else f"{i['aim']}: {'met' if i.get('aim_met') else '**missed**'}"
            ratio = "" if i.get("ratio") is None else f"{i['ratio']:.2f}x"
            out.append(
                f"| {i['name']} | {fmt(i.get('median'), unit)} | {fmt(i.get('min'), unit)} - "
                f"{fmt(i.get('max'), unit)} | {i.get('runs', '')} | {i.get('baseline') or ''} | {ratio} | {aim} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    data = json.loads(Path(args[0]).read_text())
    print(tables(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
