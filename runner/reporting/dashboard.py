"""The dashboard: one self-contained HTML page (inline CSS and SVG, no network) drawn from the reports of
sql/reports/. `runner dashboard -o report.html` writes it; `GET /dashboard` in `runner serve` serves it."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING, Any

from runner.project import Project, from_environment
from runner.reporting import charts, reports

if TYPE_CHECKING:
    import psycopg

DAYS = 30
COLORS = {
    "completed": "#16a34a",
    "pending": "#f59e0b",
    "expired": "#94a3b8",
    "canceled": "#f472b6",
    "failed": "#dc2626",
    "canceled_or_failed": "#f472b6",
}


def collect(conn: psycopg.Connection, project: Project, days: int = DAYS) -> dict[str, Any]:
    """Everything the page shows, from the reports (one read-only transaction each)."""

    def run(name: str, **params) -> list[dict]:
        return reports.run(conn, project, name, {k: str(v) for k, v in params.items()}).records()

    return {
        "now": conn.execute("SELECT now()").fetchone()[0],
        "days": days,
        "daily": run("weekly_report", days=days),
        "window": run("conversion_rate", days=days)[0],
        "health": run("daily_health")[0],
        "by_plan": run("abandonment_by_plan", days=days),
        "by_status": run("sessions_by_status", days=days),
        "timing": run("time_to_complete", days=days)[0],
        "distribution": run("completion_time_distribution", days=days),
        "retries": run("retry_stats", days=days)[0],
        "stuck": len(run("stuck_sessions", min_age="1 hour", limit=1000)),
        "webhooks": run("webhook_outcomes", hours=24),
        "jobs": run("job_status"),
    }


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1f}%"


def _minutes(value: Any) -> str:
    if value is None:
        return "–"
    minutes = float(value)
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _tile(label: str, value: str, note: str = "", tone: str = "") -> str:
    return (
        f'<div class="tile {tone}"><div class="tile-label">{escape(label)}</div>'
        f'<div class="tile-value">{escape(value)}</div><div class="tile-note">{escape(note)}</div></div>'
    )


def page(data: dict[str, Any]) -> str:
    """The HTML of the dashboard for collected `data`."""
    now: dt.datetime = data["now"]
    days = data["days"]
    by_day = {r["date"]: r for r in data["daily"]}
    today = now.astimezone().date() if now.tzinfo else now.date()
    dates = [today - dt.timedelta(days=days - 1 - i) for i in range(days)]
    zero = {"completed": 0, "pending": 0, "expired": 0, "canceled_or_failed": 0, "conversion_rate": None}
    rows = [by_day.get(d, zero) for d in dates]
    daily_chart = charts.stacked_bars_with_line(
        "daily",
        [d.strftime("%b %d") for d in dates],
        [
            charts.Series("completed", COLORS["completed"], [r["completed"] for r in rows]),
            charts.Series("pending", COLORS["pending"], [r["pending"] for r in rows]),
            charts.Series("expired", COLORS["expired"], [r["expired"] for r in rows]),
            charts.Series("canceled or failed", COLORS["canceled"], [r["canceled_or_failed"] for r in rows]),
        ],
        [None if r["conversion_rate"] is None else float(r["conversion_rate"]) for r in rows],
        "conversion",
    )

    plans = sorted(data["by_plan"], key=lambda r: r["subscription_plan"])
    plan_chart = charts.horizontal_bars(
        "abandonment",
        [
            (
                r["subscription_plan"],
                float(r["abandonment_rate"] or 0),
                f"{r['total'] - r['completed']:,} of {r['total']:,}",
            )
            for r in plans
        ],
        "#f97316",
        maximum=100,
    )

    statuses = data["by_status"]
    total = sum(r["count"] for r in statuses)
    status_chart = charts.donut(
        "status",
        [(r["status"], r["count"], COLORS.get(r["status"], "#64748b")) for r in statuses],
        f"{total:,}",
        "sessions",
    )
    legend = (
        "".join(
            f'<li><span class="swatch" style="background:{COLORS.get(r["status"], "#64748b")}"></span>'
            f'{escape(r["status"])}<b>{r["count"]:,}</b><span class="muted">{_pct(r["share"])}</span></li>'
            for r in statuses
        )
        or '<li class="muted">no sessions yet</li>'
    )

    timing = data["timing"]
    time_chart = charts.columns(
        "time_to_complete", [(r["band"], r["sessions"]) for r in data["distribution"]], "#0ea5e9"
    )

    window, health, retries = data["window"], data["health"], data["retries"]
    tiles = "".join(
        [
            _tile(f"Sessions, {days} days", f"{window['sessions']:,}", f"{window['completed']:,} paid"),
            _tile("Conversion", _pct(window["conversion_rate"]), f"over {days} days", "good"),
            _tile(
                "Today", f"{health['sessions_today']:,}", f"{_pct(health['completion_rate_today'])} completed"
            ),
            _tile(
                "Median time to pay",
                _minutes(timing["p50_minutes"]),
                f"p90 {_minutes(timing['p90_minutes'])}",
            ),
            _tile(
                "Pending > 1 h",
                f"{health['pending_over_age']:,}",
                f"{health['pending_past_expiry']:,} past expiry",
                "warn" if health["pending_past_expiry"] else "",
            ),
            _tile(
                "Stuck at Stripe",
                f"{data['stuck']:,}",
                "pending with a Stripe id > 1 h",
                "bad" if data["stuck"] else "",
            ),
            _tile(
                "Came back",
                _pct(retries["retry_rate"]),
                f"{_pct(retries['conversion_after_retry'])} of them paid",
            ),
        ]
    )

    hooks = "".join(
        f'<li><span class="pill {escape(r["status"])}">{escape(r["status"])}</span><b>{r["events"]:,}</b></li>'
        for r in data["webhooks"]
    )
    jobs = (
        "".join(
            f'<tr><td>{escape(r["job"])}</td><td><span class="pill {escape(r["last_outcome"] or "")}">'
            f"{escape(r['last_outcome'] or '–')}</span></td>"
            f"<td>{escape(r['last_success_at'].strftime('%b %d %H:%M') if r['last_success_at'] else 'never')}</td></tr>"
            for r in data["jobs"]
        )
        or '<tr><td colspan="3" class="muted">no job has run yet</td></tr>'
    )

    return TEMPLATE.format(
        generated=escape(now.strftime("%Y-%m-%d %H:%M %Z")),
        days=days,
        tiles=tiles,
        daily=daily_chart,
        plans=plan_chart,
        status=status_chart,
        legend=legend,
        timing=time_chart,
        avg=_minutes(timing["avg_minutes"]),
        p50=_minutes(timing["p50_minutes"]),
        p90=_minutes(timing["p90_minutes"]),
        p99=_minutes(timing["p99_minutes"]),
        hooks=hooks,
        jobs=jobs,
        legend_daily="".join(
            f'<span><i style="background:{c}"></i>{escape(n)}</span>'
            for n, c in (
                ("completed", COLORS["completed"]),
                ("pending", COLORS["pending"]),
                ("expired", COLORS["expired"]),
                ("canceled or failed", COLORS["canceled"]),
            )
        )
        + '<span><i class="line"></i>conversion %</span>',
    )


def render(conn: psycopg.Connection, project: Project | None = None) -> str:
    """The full dashboard HTML for the database behind `conn`."""
    return page(collect(conn, project or from_environment()))


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Checkout sessions · dashboard</title>
<style>
:root {{ --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --card:#fff; --bg:#f1f5f9; }}
* {{ box-sizing:border-box; }}
body {{ margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:var(--ink); background:var(--bg); }}
header {{ background:linear-gradient(120deg,#1e1b4b,#4338ca 55%,#0ea5e9); color:#fff; padding:28px 36px 76px; }}
header h1 {{ margin:0; font-size:26px; letter-spacing:-.01em; }}
header p {{ margin:6px 0 0; opacity:.8; }}
main {{ max-width:1240px; margin:-56px auto 40px; padding:0 24px; display:grid; gap:18px;
  grid-template-columns:repeat(12,1fr); }}
.card {{ background:var(--card); border-radius:14px; padding:18px 20px;
  box-shadow:0 1px 2px rgba(15,23,42,.06),0 8px 24px rgba(15,23,42,.06); }}
.card h2 {{ margin:0 0 2px; font-size:15px; }}
.card .sub {{ margin:0 0 12px; color:var(--muted); font-size:12.5px; }}
.tiles {{ grid-column:1/-1; display:grid; grid-template-columns:repeat(7,1fr); gap:14px; }}
.tile {{ background:var(--card); border-radius:14px; padding:14px 16px; border-top:4px solid #6366f1;
  box-shadow:0 1px 2px rgba(15,23,42,.06),0 8px 24px rgba(15,23,42,.06); }}
.tile.good {{ border-top-color:#16a34a; }} .tile.warn {{ border-top-color:#f59e0b; }} .tile.bad {{ border-top-color:#dc2626; }}
.tile-label {{ color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }}
.tile-value {{ font-size:24px; font-weight:700; margin-top:2px; white-space:nowrap; }}
.tile-note {{ color:var(--muted); font-size:12px; }}
.wide {{ grid-column:1/-1; }} .half {{ grid-column:span 6; }} .third {{ grid-column:span 4; }}
.legend {{ display:flex; gap:16px; flex-wrap:wrap; color:var(--muted); font-size:12.5px; margin-bottom:6px; }}
.legend i {{ display:inline-block; width:11px; height:11px; border-radius:3px; margin-right:6px; vertical-align:-1px; }}
.legend i.line {{ height:3px; width:16px; background:#4f46e5; border-radius:2px; vertical-align:3px; }}
svg.chart {{ display:block; overflow:visible; }}
svg .grid {{ stroke:var(--line); stroke-width:1; }}
svg .axis {{ fill:var(--muted); font-size:11px; }}
svg .label {{ fill:var(--ink); font-size:13px; font-weight:600; }}
svg .value {{ fill:var(--ink); font-size:12.5px; font-weight:600; }}
svg .muted {{ fill:var(--muted); font-weight:400; }}
svg .track {{ fill:#f1f5f9; }}
svg .donut-value {{ fill:var(--ink); font-size:28px; font-weight:700; }}
svg .mark:hover {{ opacity:.8; }}
.status {{ display:flex; gap:18px; align-items:center; }} .status svg {{ max-width:220px; }}
ul.list {{ list-style:none; margin:0; padding:0; flex:1; }}
ul.list li {{ display:flex; align-items:center; gap:8px; padding:6px 0; border-bottom:1px solid var(--line); }}
ul.list li b {{ margin-left:auto; }} ul.list .muted {{ width:56px; text-align:right; }}
.swatch {{ width:12px; height:12px; border-radius:3px; }}
.muted {{ color:var(--muted); }}
.stats {{ display:flex; gap:22px; margin-top:8px; color:var(--muted); font-size:12.5px; }} .stats b {{ color:var(--ink); }}
.pill {{ display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; background:#e2e8f0; color:#334155; }}
.pill.processed, .pill.succeeded {{ background:#dcfce7; color:#166534; }}
.pill.failed, .pill.rejected {{ background:#fee2e2; color:#991b1b; }}
.pill.received, .pill.running {{ background:#fef3c7; color:#92400e; }}
table {{ width:100%; border-collapse:collapse; }} td {{ padding:7px 10px 7px 0; border-bottom:1px solid var(--line); vertical-align:middle; }}
footer {{ text-align:center; color:var(--muted); font-size:12px; padding-bottom:28px; }}
@media (max-width:1000px) {{ .tiles {{ grid-template-columns:repeat(2,1fr); }} .half,.third {{ grid-column:1/-1; }} }}
</style></head>
<body>
<header><h1>Checkout sessions</h1><p>Every Stripe Checkout of the last {days} days · generated {generated}</p></header>
<main>
<section class="tiles">{tiles}</section>
<section class="card wide"><h2>Sessions and conversion per day</h2>
<p class="sub">Columns: sessions created each day by what became of them. Line: share completed (right axis).</p>
<div class="legend">{legend_daily}</div>{daily}</section>
<section class="card half"><h2>Abandonment by plan</h2>
<p class="sub">Share of each plan's checkouts in {days} days that did not end in a payment.</p>{plans}</section>
<section class="card half"><h2>Status mix</h2><p class="sub">Where the last {days} days' sessions stand now.</p>
<div class="status">{status}<ul class="list">{legend}</ul></div></section>
<section class="card half"><h2>Time to complete</h2>
<p class="sub">From checkout start to confirmed payment, completed sessions of {days} days.</p>{timing}
<div class="stats"><span>average <b>{avg}</b></span><span>median <b>{p50}</b></span><span>p90 <b>{p90}</b></span>
<span>p99 <b>{p99}</b></span></div></section>
<section class="card third" style="grid-column:span 3"><h2>Stripe events, 24 h</h2><p class="sub">By outcome.</p>
<ul class="list">{hooks}</ul></section>
<section class="card third" style="grid-column:span 3"><h2>Jobs</h2><p class="sub">Latest run, last success.</p>
<table>{jobs}</table></section>
</main>
<footer>checkout-sessions · numbers from <code>runner report</code> (sql/reports/) · self-contained, works offline</footer>
</body></html>
"""
