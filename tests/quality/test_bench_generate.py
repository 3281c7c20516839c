"""The benchmark data generator (bench/generate.py) fills data the schema accepts, with the promised shape.
Behaviour only: no timings here."""

from __future__ import annotations

from bench.generate import generate, parse_size, rounds, user_id_sql


def test_rounds_sum_to_the_requested_count_and_shrink():
    for n in (1, 7, 2_000, 100_000, 1_000_003):
        sizes = rounds(n)
        assert sum(sizes) == n
        assert sizes == sorted(sizes, reverse=True)


def test_parse_size():
    assert [parse_size(s) for s in ("100k", "1M", "10M", "2500", "1_000")] == [
        100_000,
        1_000_000,
        10_000_000,
        2_500,
        1_000,
    ]


def test_generate_fills_consistent_sessions(conn):
    g = generate(conn, 4_000, seed=7)
    assert g.sessions == 4_000
    count, users, per_user_max = conn.execute(
        "SELECT count(*), count(DISTINCT user_id), max(n) FROM payment_checkout_sessions, "
        "LATERAL (SELECT count(*) AS n FROM payment_checkout_sessions s2 WHERE s2.user_id = "
        "payment_checkout_sessions.user_id) x"
    ).fetchone()
    assert count == 4_000
    assert users == g.users == conn.execute("SELECT count(*) FROM users").fetchone()[0]
    assert 3 <= count / users <= 5 and per_user_max >= 5  # several sessions per user, unevenly
    # Every status appears; the schema's rules hold (the inserts would have failed otherwise, but say so).
    assert set(g.by_status) == {"pending", "completed", "expired", "canceled", "failed"}
    bad = conn.execute(
        """SELECT count(*) FILTER (WHERE (status = 'completed') <> (completed_at IS NOT NULL)),
                  count(*) FILTER (WHERE expires_at <= created_at),
                  count(*) FILTER (WHERE completed_at > now()),
                  count(*) FILTER (WHERE created_at < now() - INTERVAL '366 days' OR created_at > now())
             FROM payment_checkout_sessions"""
    ).fetchone()
    assert bad == (0, 0, 0, 0)
    assert (
        conn.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM payment_checkout_sessions WHERE status = 'pending' "
            "GROUP BY user_id, subscription_plan) x"
        ).fetchone()[0]
        == 1
    )
    # Plans come from the catalogue at catalogue prices, weighted towards the cheapest.
    assert (
        conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions s JOIN subscription_plans p ON p.code = s.subscription_plan "
            "WHERE p.price <> s.plan_price"
        ).fetchone()[0]
        == 0
    )
    top = conn.execute(
        "SELECT subscription_plan FROM payment_checkout_sessions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    assert (
        top
        == conn.execute("SELECT code FROM subscription_plans WHERE active ORDER BY price LIMIT 1").fetchone()[
            0
        ]
    )
    # User n's id is computable (what the pgbench scripts rely on).
    assert conn.execute(f"SELECT count(*) FROM users WHERE id = {user_id_sql('0', '7')}").fetchone()[0] == 1


def test_generate_is_deterministic_for_a_seed(conn, make_database, template_db):
    import psycopg

    other_url = make_database(template_db)
    generate(conn, 1_000, seed=3, now="2025-06-01T00:00:00Z")
    with psycopg.connect(other_url, autocommit=True) as other:
        generate(other, 1_000, seed=3, now="2025-06-01T00:00:00Z")
        digest = "SELECT md5(string_agg(id::text || status || created_at::text, ',' ORDER BY id)) FROM payment_checkout_sessions"
        assert conn.execute(digest).fetchone()[0] == other.execute(digest).fetchone()[0]
