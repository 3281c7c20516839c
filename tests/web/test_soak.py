"""The soak of bench/soak.py, short: 15 seconds of mixed webhook and API load on a real `runner serve`.

The 10-minute run (`python bench/soak.py`) also judges memory (RSS growth under 10% after warm-up); 15
seconds is too short for that, so this one checks what a short run can: zero errors, no 5xx or traceback
in the server's JSON log, and never more PostgreSQL connections than the pool holds.
"""

from __future__ import annotations

from bench import soak


def test_short_soak_has_no_errors_and_stays_within_the_pool(db_url, tmp_path):
    report = soak.run(
        db_url,
        duration=15,
        max_requests=20_000,
        clients=4,
        workers=4,
        pool=3,
        users=50,
        log_path=tmp_path / "serve.log",
    )
    assert report.requests > 0 and set(report.by_kind) >= {"webhook", "create_checkout", "get_session"}, (
        report
    )
    assert report.errors == 0, report.error_samples
    assert report.server_log_5xx == 0 and report.server_log_tracebacks == 0
    assert 1 <= report.connections_max <= 3, report.samples
    assert report.statuses.get("200", 0) > 0
