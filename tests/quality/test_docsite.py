"""`runner docs -o DIR`: a static site that documents every table, function, report, data test and applied
file of the live database, whose links resolve and whose dependency picture a real browser (headless
Chromium) draws with every label inside its box."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner import project as project_mod
from runner.cli import cli
from runner.quality import docsite
from runner.reporting import reports
from tests import browser

# Appended to a copy of a page by the test only: measures what the browser laid out.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = {nodes: [], edges: [], sections: 0};
  for (const g of document.querySelectorAll('svg.depgraph g.node')) {
    const r = g.querySelector('rect').getBBox();
    const text = g.querySelector('text');
    const t = text.getBBox();
    out.nodes.push({name: g.dataset.name, x: r.x, y: r.y, w: r.width, h: r.height,
                    tx: t.x, tw: text.getComputedTextLength()});
  }
  for (const p of document.querySelectorAll('svg.depgraph path.edge')) {
    const len = p.getTotalLength();
    const a = p.getPointAtLength(0), b = p.getPointAtLength(len);
    const pts = [];
    for (let at = 0; at <= len; at += 3) { const q = p.getPointAtLength(at); pts.push([q.x, q.y]); }
    out.edges.push({from: p.dataset.from, to: p.dataset.to, length: len, x1: a.x, y1: a.y, x2: b.x, y2: b.y,
                    pts: pts});
  }
  const svg = document.querySelector('svg.depgraph').getBoundingClientRect();
  out.svg = {w: svg.width, h: svg.height};
  out.sections = [...document.querySelectorAll('section.file')].filter(s => s.getBoundingClientRect().height > 0).length;
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture
def site(conn, project, tmp_path) -> Path:
    from runner.quality import demo

    demo.fill(conn, seed=1, sessions=600)
    docsite.build(conn, project, tmp_path / "site")
    return tmp_path / "site"


def page(site: Path, name: str) -> str:
    return (site / f"{name}.html").read_text(encoding="utf-8")


def test_every_page_is_self_contained_and_every_link_resolves(site):
    ids = {p: set(re.findall(r'\bid="([^"]+)"', page(site, p))) for p in docsite.PAGES}
    for name in docsite.PAGES:
        html = page(site, name)
        assert html.startswith("<!doctype html>")
        # nothing fetched: no src=, stylesheet link, script, @import or url() other than the page's own #arrow
        assert not re.search(r"""\bsrc\s*=|<link\b|<script\b|@import|\burl\((?!#)""", html)
        for href in re.findall(r'\bhref="([^"]+)"', html):
            target, _, anchor = unescape(href).partition("#")
            target = target or f"{name}.html"
            assert target.removesuffix(".html") in docsite.PAGES, (name, href)
            assert not anchor or anchor in ids[target.removesuffix(".html")], (name, href)


def test_tables_with_columns_types_defaults_constraints_indexes_comments(site, conn):
    html = unescape(page(site, "tables"))
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v')"
        )
    ]
    assert "payment_checkout_sessions" in tables and len(tables) >= 10
    for table in tables:
        assert f'id="table-{table}"' in html
    section = html.split('id="table-payment_checkout_sessions"')[1].split("</section>")[0]
    for index in ("user_id", "email", "status", "stripe_session", "pending", "expired"):
        assert f"idx_payment_checkout_sessions_{index}" in section
    for name, definition in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid, true) FROM pg_constraint "
        "WHERE conrelid = 'payment_checkout_sessions'::regclass AND contype <> 'n'"
    ):
        assert name in section and definition in section
    comment = conn.execute(
        "SELECT col_description('payment_checkout_sessions'::regclass, attnum) FROM pg_attribute "
        "WHERE attrelid = 'payment_checkout_sessions'::regclass "
        "AND attname = 'stripe_sessions_created'"
    ).fetchone()[0]
    assert comment and comment in section
    assert "character varying(255)" in section and "timestamp with time zone" in section
    assert "now()" in section  # created_at's default
    assert "created in <code>sql/tables/V003__payment_checkout_sessions.sql</code>" in section
    assert '→ <a href="#table-users">users</a>' in section  # the foreign key, linked


def test_functions_signature_comment_executors_and_the_depends_graph(site, conn, project):
    html = unescape(page(site, "functions"))
    for name, args, comment in conn.execute(
        "SELECT proname, pg_get_function_arguments(oid), obj_description(oid, 'pg_proc') FROM pg_proc "
        "WHERE pronamespace = 'public'::regnamespace"
    ):
        assert f"{name}({args})" in html
        if comment:
            assert comment in html
    # who may execute: what the catalogue's ACL says (the privileges file revoked PUBLIC's default)
    for name in ("record_webhook_event", "get_or_create_checkout_session"):
        executors = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END "
                "FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
                "WHERE p.proname = %s AND a.privilege_type = 'EXECUTE' ORDER BY 1",
                (name,),
            )
        ]
        cell = html.split(f'data-function="{name}"')[1].split('class="executors">')[1].split("<span")[0]
        assert cell.strip() == ", ".join(f"<code>{e}</code>" for e in executors)
        assert "PUBLIC" not in executors and len(executors) >= 2
    assert (
        "security definer"
        in html.split('data-function="get_or_create_checkout_session"')[1].split("</table>")[0]
    )
    edges = re.findall(r'class="edge" data-from="(\w+)" data-to="(\w+)"', html)
    expected = sorted((d, f.description) for f in project.repeatables() for d in f.depends)
    assert sorted(edges) == expected and ("process_webhook_event", "record_webhook_event") in edges
    assert html.count('class="node"') + html.count('class="node finally"') == len(project.repeatables())


def test_graph_layout_columns_follow_apply_order_and_long_arrows_get_waypoints():
    from runner.project import SqlFile
    from runner.quality import depgraph

    def f(name, *depends, late=False):
        return SqlFile(
            "repeatable", f"functions/{name}.sql", None, name, "", "", depends=depends, finally_=late
        )

    graph = depgraph.layout(
        [
            f("rules"),
            f("complete", "rules"),
            f("webhook", "complete", "rules"),
            f("alone"),
            f("grants", late=True),
            f("supabase", "grants", late=True),
        ]
    )
    column = {n.name: n.column for n in graph.nodes.values()}
    assert column == {"rules": 0, "alone": 0, "complete": 1, "webhook": 2, "grants": 3, "supabase": 4}
    assert graph.edges == [
        ("complete", "webhook"),
        ("grants", "supabase"),
        ("rules", "complete"),
        ("rules", "webhook"),
    ]
    # rules -> webhook skips column 1: it crosses it at a row of its own, below `complete`
    ((left, right, y),) = graph.waypoints[("rules", "webhook")]
    middle = graph.nodes["complete"]
    assert (left, right) == (middle.x, middle.x + middle.width) and y > middle.y + depgraph.NODE_HEIGHT
    assert graph.waypoints[("rules", "complete")] == []
    assert [n.name for n in sorted(graph.nodes.values(), key=lambda n: (n.column, n.y))][:2] == [
        "rules",
        "alone",
    ]
    svg = depgraph.svg(graph)
    assert svg.count('class="edge"') == 4 and svg.count('class="node finally"') == 2
    assert f"L {right:.1f} {y:.1f}" in svg  # the waypoint's straight run


def test_reports_with_parameters(site, project):
    html = unescape(page(site, "reports"))
    for report in reports.available(project):
        assert f'id="report-{report.name}"' in html and report.description in html
        for param in report.params:
            assert f"<code>{param.name}</code>" in html
    assert "runner report conversion_rate -p days=30" in html


def test_data_tests_and_history(site, conn, project):
    datatests = pytest.importorskip("runner.quality.datatests")
    html = unescape(page(site, "tests"))
    tests = datatests.load(project)
    assert tests and html.count('class="test"') == len(tests)
    assert html.count('data-result="pass"') == len(tests)  # the demo data breaks no rule
    history = page(site, "history")
    for (name,) in conn.execute("SELECT DISTINCT name FROM runner_schema_history"):
        assert f"sql/{name}" in history
    assert (
        history.count('class="applied-file"')
        == conn.execute("SELECT count(*) FROM runner_schema_history").fetchone()[0]
    )


def test_a_failing_data_test_shows_its_rows(conn, project, tmp_path):
    pytest.importorskip("runner.quality.datatests")
    copy = tmp_path / "project"
    shutil.copytree(project.sql_dir, copy / "sql")
    (copy / "sql" / "tests").mkdir(exist_ok=True)
    (copy / "sql" / "tests" / "no_broken_users.sql").write_text(
        "-- No user is called broken\nSELECT id, email FROM users WHERE email LIKE 'broken%'\n"
    )
    conn.execute("INSERT INTO users (email) VALUES ('broken-1@example.com'), ('broken-2@example.com')")
    site = docsite.build(conn, project_mod.load(copy), tmp_path / "site")
    assert site.failing_tests == 1
    html = page(tmp_path / "site", "tests")
    row = html.split('data-test="no_broken_users"')[1].split("</tr>\n</table>")[0]
    assert 'data-result="fail"' in html.split('data-test="no_broken_users"')[0][-40:] + row[:40]
    assert "<b>2</b>" in row and "broken-1@example.com" in row and "broken-2@example.com" in row
    assert "FAIL" in row


def test_cli_writes_the_site_and_refuses_a_folder_it_did_not_make(db_url, tmp_path):
    out = tmp_path / "site"
    result = CliRunner().invoke(cli, ["--database-url", db_url, "docs", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Wrote 6 pages to {out}: ") and "data tests (0 failing)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p}.html" for p in docsite.PAGES)
    again = CliRunner().invoke(
        cli, ["--database-url", db_url, "docs", "-o", str(out), "--no-tests", "--format", "json"]
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["tables"] >= 10

    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    refused = CliRunner().invoke(cli, ["--database-url", db_url, "docs", "-o", str(other)])
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"Error: {other} is not empty and holds no earlier site")
    assert [p.name for p in other.iterdir()] == ["cat.jpg"]
    assert "Examples:" in CliRunner().invoke(cli, ["docs", "--help"]).output


def test_two_runs_at_once_into_one_folder_both_finish_with_whole_pages(db_url, project, tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    import psycopg

    barrier = Barrier(2)

    def one(_):
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            return docsite.build(conn, project, tmp_path / "site", run_tests=False)

    with ThreadPoolExecutor(2) as pool:
        sites = list(pool.map(one, range(2)))
    assert [s.tables for s in sites] == [sites[0].tables] * 2 and sites[0].tables >= 10
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == sorted(f"{p}.html" for p in docsite.PAGES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary folder left behind
    for name in docsite.PAGES:
        html = page(tmp_path / "site", name)
        assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")


def test_a_database_never_applied_gets_a_site_saying_so(empty_db_url, project, tmp_path):
    import psycopg

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        site = docsite.build(conn, project, tmp_path / "site", run_tests=False)
    assert site.tables == 0 and site.functions == 0 and site.reports > 0
    history = page(tmp_path / "site", "history")
    assert "Nothing applied here yet: run <code>runner apply</code>." in history
    assert history.count('data-state="pending"') == len(project.files())
    assert 'data-result="not-run"' in page(tmp_path / "site", "tests")


@browser.needs_chromium
def test_headless_chromium_draws_the_dependency_graph(site, project, tmp_path):
    probe = browser.probe(page(site, "functions").replace("</body>", PROBE + "</body>"), tmp_path)
    files = project.repeatables()
    assert len(probe["nodes"]) == len(files) and probe["sections"] >= len(files)
    assert probe["svg"]["w"] > 300 and probe["svg"]["h"] > 100
    boxes = {n["name"]: n for n in probe["nodes"]}
    for n in probe["nodes"]:
        assert n["w"] > 0 and n["h"] > 0
        assert n["tx"] >= n["x"] and n["tx"] + n["tw"] <= n["x"] + n["w"], n  # the label fits its box
    for a in probe["nodes"]:  # no two boxes overlap
        for b in probe["nodes"]:
            if a is not b:
                assert (
                    a["x"] + a["w"] <= b["x"]
                    or b["x"] + b["w"] <= a["x"]
                    or a["y"] + a["h"] <= b["y"]
                    or b["y"] + b["h"] <= a["y"]
                ), (a["name"], b["name"])
    assert len(probe["edges"]) == sum(len(f.depends) for f in files) > 0
    for e in probe["edges"]:  # each arrow runs rightwards from its dependency's box to its dependent's
        source, target = boxes[e["from"]], boxes[e["to"]]
        assert e["length"] > 0
        assert (
            abs(e["x1"] - (source["x"] + source["w"])) < 1
            and source["y"] <= e["y1"] <= source["y"] + source["h"]
        )
        assert abs(e["x2"] - target["x"]) < 1 and target["y"] <= e["y2"] <= target["y"] + target["h"]
        assert e["x2"] > e["x1"]
        for x, y in e["pts"]:  # it runs between the boxes, never through a third one
            for n in probe["nodes"]:
                if n["name"] not in (e["from"], e["to"]):
                    assert not (
                        n["x"] + 1 < x < n["x"] + n["w"] - 1 and n["y"] + 1 < y < n["y"] + n["h"] - 1
                    ), (e["from"], e["to"], n["name"])
