"""The dashboard: self-contained HTML whose charts a real browser (headless Chromium) draws."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.reporting import dashboard
from tests import browser
from tests.reporting_seed import seed

CHARTS = ("daily", "abandonment", "status", "time_to_complete")

# Appended to a copy of the page by the test only: measures what the browser laid out.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = {};
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.getBoundingClientRect();
    let drawn = 0;
    for (const mark of svg.querySelectorAll('.mark')) {
      const b = mark.getBBox();
      const length = mark.getTotalLength ? mark.getTotalLength() : 0;
      if (b.width * b.height > 0 || length > 0) drawn++;
    }
    out[svg.dataset.chart] = {width: box.width, height: box.height, drawn: drawn};
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_page_is_self_contained_with_every_chart(conn, project):
    seed(conn)
    html = dashboard.render(conn, project)
    assert html.startswith("<!doctype html>")
    for chart in CHARTS:
        assert f'data-chart="{chart}"' in html
    # nothing fetched from anywhere: no src/href attributes, no @import, no url(...)
    assert not re.search(r"""\b(src|href)\s*=|@import|url\(""", html)
    assert "<script" not in html
    assert html.count('class="mark bar"') > 30
    assert 'class="mark line"' in html


def test_empty_database_renders(conn, project):
    html = dashboard.render(conn, project)
    assert "no sessions yet" in html and "no job has run yet" in html
    assert 'class="mark' not in html


def test_cli_writes_the_file(db_url, tmp_path):
    target = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["--database-url", db_url, "dashboard", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("<!doctype html>")
    assert "Examples:" in CliRunner().invoke(cli, ["dashboard", "--help"]).output


@browser.needs_chromium
def test_headless_chromium_draws_the_charts(conn, project, tmp_path):
    seed(conn)
    probe = browser.probe(dashboard.render(conn, project).replace("</body>", PROBE + "</body>"), tmp_path)
    assert set(probe) == set(CHARTS)
    for chart, measured in probe.items():
        assert measured["width"] > 100 and measured["height"] > 100, (chart, measured)
        assert measured["drawn"] > 0, (chart, measured)
    assert probe["daily"]["drawn"] > 30  # stacked columns for 30 days, the conversion line and its dots
    assert probe["abandonment"]["drawn"] == 3  # one bar per plan
    assert probe["status"]["drawn"] == 5  # one arc per status


def test_served_by_the_service_behind_the_token(db_url, conn):
    service = pytest.importorskip("runner.web.app")
    support = pytest.importorskip("tests.payments_support")
    from runner.settings import Settings

    seed(conn)
    app = service.create_app(
        Settings(database_url=db_url, service_token=support.SERVICE_TOKEN, jwt_secret=support.JWT_SECRET)
    )
    try:
        client = app.test_client()
        assert client.get("/dashboard").status_code in (401, 403)
        page = client.get("/dashboard", headers={"Authorization": f"Bearer {support.SERVICE_TOKEN}"})
        assert page.status_code == 200 and page.content_type.startswith("text/html")
        assert b'data-chart="daily"' in page.data
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.content_type.startswith("text/plain; version=0.0.4")
        assert b'checkout_sessions{plan="pro",status="completed"}' in metrics.data
    finally:
        app.extensions["runner"].close()
