"""The reference's audit trail (issue 18): every Stripe session kept and findable, database errors in
error_logs (category database), a deleted user's data gone from every table, the app's metadata on a checkout."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from runner import error_log
from runner.web.app import create_app
from tests.payments_support import (
    SERVICE_TOKEN,
    bearer,
    checkout_event,
    new_session,
    session_row,
    sign,
    user_token,
)

WEBHOOK = "/api/payments/webhook"
SESSION = "/api/payments/checkout-session"
CREATE = "/api/payments/create-checkout"


def relink(conn, row: dict) -> str:
    """Link the row to a new Stripe session, as create-checkout does after the previous one expired."""
    generation = conn.execute(
        "SELECT stripe_sessions_created FROM payment_checkout_sessions WHERE id = %s", (row["id"],)
    ).fetchone()[0]
    new_id = f"cs_test_{uuid.uuid4().hex}"
    assert (
        conn.execute(
            "SELECT link_stripe_session(%s, %s, %s, NULL, %s)",
            (row["id"], new_id, f"https://checkout.stripe.test/c/pay/{new_id}", generation),
        ).fetchone()[0]
        is True
    )
    return new_id


def deliver(client, body: str):
    return client.post(WEBHOOK, data=body, headers=sign(body))


# 1. Every Stripe session a checkout row had is kept and findable.


def test_every_stripe_session_of_a_row_is_kept_and_leads_back_to_it(conn, make_user):
    row = new_session(conn, make_user())
    first = row["stripe_session_id"]
    second = relink(conn, row)
    third = relink(conn, row)

    assert session_row(conn, row["id"])["stripe_session_id"] == third
    assert conn.execute("SELECT checkout_stripe_session_ids(%s)", (row["id"],)).fetchone()[0] == [
        first,
        second,
        third,
    ]
    for stripe_id in (first, second, third):
        assert (
            conn.execute("SELECT checkout_session_for_stripe_session(%s)", (stripe_id,)).fetchone()[0]
            == row["id"]
        )
    assert conn.execute("SELECT checkout_session_for_stripe_session('cs_test_unknown')").fetchone()[0] is None
    replaced = conn.execute(
        "SELECT stripe_session_id FROM payment_checkout_stripe_sessions "
        "WHERE checkout_session_id = %s AND replaced_at IS NOT NULL ORDER BY linked_at",
        (row["id"],),
    ).fetchall()
    assert sorted(r[0] for r in replaced) == sorted([first, second])


def test_a_dba_update_of_the_column_is_kept_too(conn, make_user):
    row = new_session(conn, make_user())
    conn.execute(
        "UPDATE payment_checkout_sessions SET stripe_session_id = 'cs_test_by_hand' WHERE id = %s",
        (row["id"],),
    )
    assert conn.execute("SELECT checkout_stripe_session_ids(%s)", (row["id"],)).fetchone()[0] == [
        row["stripe_session_id"],
        "cs_test_by_hand",
    ]


def test_archived_rows_keep_their_stripe_sessions(conn, make_user):
    row = new_session(conn, make_user())
    old = row["stripe_session_id"]
    current = relink(conn, row)
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'completed', completed_at = now() - interval '200 days',"
        " created_at = now() - interval '201 days', expires_at = now() - interval '200 days' WHERE id = %s",
        (row["id"],),
    )
    assert conn.execute("SELECT archive_completed_checkout_sessions()").fetchone()[0] == 1
    assert conn.execute("SELECT checkout_session_for_stripe_session(%s)", (old,)).fetchone()[0] == row["id"]
    assert conn.execute("SELECT checkout_stripe_session_ids(%s)", (row["id"],)).fetchone()[0] == [
        old,
        current,
    ]


def test_an_event_for_a_replaced_stripe_session_without_metadata_finds_its_row(client, conn, make_user):
    row = new_session(conn, make_user())
    old = row["stripe_session_id"]
    relink(conn, row)
    body = json.loads(checkout_event("expired", row, stripe_session_id=old))
    obj = body["data"]["object"]
    del obj["metadata"], obj["client_reference_id"]
    response = deliver(client, json.dumps(body))
    assert response.status_code == 200
    assert (response.json["status"], response.json["outcome"], response.json["checkoutSessionId"]) == (
        "ignored",
        "event for a replaced Stripe session",
        str(row["id"]),
    )
    assert session_row(conn, row["id"])["status"] == "pending"


def test_a_payment_through_a_replaced_stripe_session_completes_the_row(client, conn, make_user):
    row = new_session(conn, make_user())
    old = row["stripe_session_id"]
    current = relink(conn, row)
    body = json.loads(checkout_event("completed", row, stripe_session_id=old))
    del body["data"]["object"]["metadata"], body["data"]["object"]["client_reference_id"]
    response = deliver(client, json.dumps(body))
    assert (response.json["status"], response.json["outcome"]) == ("processed", "completed")
    after = session_row(conn, row["id"])
    assert (after["status"], after["stripe_session_id"]) == ("completed", old)
    # The session it paid through is current again; the other one is still on record.
    assert set(conn.execute("SELECT checkout_stripe_session_ids(%s)", (row["id"],)).fetchone()[0]) == {
        old,
        current,
    }

    # A second payment, through the other Stripe session: rejected for a person (a refund), nothing changes.
    twice = deliver(client, checkout_event("completed", row, stripe_session_id=current))
    assert twice.json["status"] == "rejected"
    assert "already paid through Stripe session" in twice.json["outcome"]
    assert session_row(conn, row["id"])["stripe_session_id"] == old


def test_an_unknown_stripe_session_is_still_refused(client, conn, make_user):
    row = new_session(conn, make_user())
    response = deliver(client, checkout_event("completed", row, stripe_session_id="cs_test_someone_else"))
    assert response.json["status"] == "rejected" and "is not the one linked" in response.json["outcome"]


def test_the_api_finds_a_checkout_by_any_of_its_stripe_sessions(client, conn, make_user):
    user, other = make_user(), make_user()
    row = new_session(conn, user)
    old = row["stripe_session_id"]
    current = relink(conn, row)
    mine = bearer(user_token(user))
    for stripe_id in (old, current):
        response = client.get(SESSION, query_string={"stripeSessionId": stripe_id}, headers=mine)
        assert response.status_code == 200, response.json
        assert response.json["session"]["id"] == str(row["id"])
        assert response.json["session"]["stripeSessionId"] == current
        assert response.json["session"]["stripeSessionIds"] == [old, current]
    # Another user's Stripe session is as unknown as a made-up one; both ids at once is a mistake.
    assert (
        client.get(
            SESSION, query_string={"stripeSessionId": old}, headers=bearer(user_token(other))
        ).status_code
        == 404
    )
    assert (
        client.get(SESSION, query_string={"stripeSessionId": "cs_test_nope"}, headers=mine).status_code == 404
    )
    both = client.get(
        SESSION, query_string={"stripeSessionId": old, "sessionId": str(row["id"])}, headers=mine
    )
    assert both.status_code == 400 and "not both" in both.json["error"]["message"]


def test_the_lookup_report_finds_live_and_archived_rows_by_a_replaced_stripe_session(
    conn, project, make_user
):
    from runner.reporting import reports

    row = new_session(conn, make_user())
    old = row["stripe_session_id"]
    current = relink(conn, row)
    found = reports.run(conn, project, "session_lookup", {"stripe_session_id": old}).records()
    assert [
        (r["id"], r["current_stripe_session_id"], r["stripe_session_ids"], r["archived"]) for r in found
    ] == [(row["id"], current, f"{old} {current}", False)]
    assert reports.run(conn, project, "session_lookup", {}).records() == []
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'completed', completed_at = now() - interval '200 days',"
        " created_at = now() - interval '201 days', expires_at = now() - interval '200 days' WHERE id = %s",
        (row["id"],),
    )
    conn.execute("SELECT archive_completed_checkout_sessions()")
    found = reports.run(conn, project, "session_lookup", {"stripe_session_id": old}).records()
    assert [(r["id"], r["archived"]) for r in found] == [(row["id"], True)]
    stats = reports.run(conn, project, "retry_stats", {}).records()[0]
    assert (stats["stripe_sessions"], stats["stripe_sessions_replaced"]) == (2, 1)


# 4. The app's metadata on a checkout.


def test_metadata_is_stored_merged_on_resume_shown_and_sent_to_stripe(client, conn, make_user, fake_stripe):
    user = make_user()
    headers = bearer(user_token(user))
    context = {"campaign": "spring", "referrer": "newsletter", "page": {"path": "/pricing", "ab": [1, 2]}}
    response = client.post(CREATE, json={"plan": "pro", "metadata": context}, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["session"]["metadata"] == context
    sent = fake_stripe.created()[0]
    assert {k: v for k, v in sent.items() if k.startswith("metadata[")} == {
        "metadata[campaign]": "spring",
        "metadata[referrer]": "newsletter",
        "metadata[page]": '{"ab":[1,2],"path":"/pricing"}',
        "metadata[userId]": str(user),
        "metadata[plan]": "pro",
        "metadata[checkoutSessionId]": response.json["checkoutSessionId"],
    }

    again = client.post(
        SESSION,
        json={"plan": "pro", "metadata": {"campaign": "summer", "utm_source": "ads"}},
        headers=headers,
    )
    assert again.json["session"]["metadata"] == {**context, "campaign": "summer", "utm_source": "ads"}
    shown = client.get(
        SESSION, query_string={"sessionId": response.json["checkoutSessionId"]}, headers=headers
    )
    assert shown.json["session"]["metadata"]["utm_source"] == "ads"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (["not", "an", "object"], "metadata must be a JSON object"),
        ({"userId": "someone-else"}, "reserved by the project"),
        ({"CheckoutSessionId": "x"}, "reserved by the project"),
        ({"runner_anything": 1}, "reserved by the project"),
        ({"bad[key]": 1}, "must be 1-40 letters"),
        ({"k" * 41: 1}, "must be 1-40 letters"),
        ({"note": "x" * 501}, "longer than 500 characters"),
        ({f"k{i}": i for i in range(21)}, "more than 20 keys"),
        ({"a": {"b": {"c": {"d": 1}}}}, "nested more than 3 levels"),
        ({"a": [[["deep"]]]}, "nested more than 3 levels"),
        (
            {
                "a": "y" * 450,
                "b": "y" * 450,
                "c": "y" * 450,
                "d": "y" * 450,
                "e": "y" * 450,
                "f": "y" * 450,
                "g": "y" * 450,
                "h": "y" * 450,
                "i": "y" * 450,
                "j": "y" * 450,
            },
            "at most 4096",
        ),
    ],
)
def test_bad_metadata_is_a_400_and_writes_nothing(client, conn, make_user, metadata, message):
    user = make_user()
    for path in (CREATE, SESSION):
        response = client.post(
            path, json={"plan": "pro", "metadata": metadata}, headers=bearer(user_token(user))
        )
        assert response.status_code == 400, response.json
        assert message in response.json["error"]["message"]
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 0


def test_the_reference_call_with_five_named_parameters_still_works(conn, make_user):
    user = make_user()
    sid = conn.execute(
        "SELECT get_or_create_checkout_session(p_user_id => %s, p_email => 'r@example.com', "
        "p_plan => 'pro', p_price => 29.99, p_provider => 'stripe')",
        (user,),
    ).fetchone()[0]
    assert session_row(conn, sid)["metadata"] == {}
    assert conn.execute(
        "SELECT count(*), min(pg_get_function_identity_arguments(oid)) FROM pg_proc "
        "WHERE proname = 'get_or_create_checkout_session'"
    ).fetchone() == (
        1,
        "p_user_id uuid, p_email text, p_plan text, p_price numeric, p_provider text, p_metadata jsonb",
    )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="reserved"):
        conn.execute(
            "SELECT get_or_create_checkout_session(%s, 'r@example.com', 'pro', p_metadata => %s)",
            (user, json.dumps({"plan": "free"})),
        )


def test_metadata_beyond_stripes_limits_from_an_older_row_is_left_out_of_stripe(conn, make_user):
    from runner.payments.checkout import stripe_metadata

    row = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "subscription_plan": "pro",
        "metadata": {
            "ok": "yes",
            "long": "z" * 501,
            "bad[key]": "x",
            "userId": "forged",
            "gone": None,
            "n": 3,
        },
    }
    assert stripe_metadata(row) == {
        "n": "3",
        "ok": "yes",
        "userId": str(row["user_id"]),
        "plan": "pro",
        "checkoutSessionId": str(row["id"]),
    }


# 3. Deleting a user leaves nothing of them in any table the project owns.


def find_everywhere(conn, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, value) of every row of every table in the schema whose column, as text, holds one of
    the needles (case-insensitive): every column of every table, read from the catalogue."""
    columns = conn.execute(
        "SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY 1, 2"
    ).fetchall()
    assert len({table for table, _ in columns}) >= 10
    hits = []
    for table, column in columns:
        query = sql.SQL(
            "SELECT {col}::text FROM {table} WHERE strpos(lower({col}::text), lower(%s)) > 0"
        ).format(col=sql.Identifier(column), table=sql.Identifier(table))
        for needle in needles:
            hits += [(table, column, value) for (value,) in conn.execute(query, (needle,)).fetchall()]
    return hits


def test_deleting_a_user_removes_or_redacts_them_in_every_table(client, conn, make_user, project):
    email = f"Forget.Me+{uuid.uuid4().hex[:6]}@Example.com"
    user = make_user(email)
    bystander = make_user()
    kept = new_session(conn, bystander)

    # A checkout paid through the webhook (the event carries the email), after a replaced Stripe session, with
    # the app's metadata naming the user; a second one paid long ago and archived; mail to the address
    # without a user id; an error and an unrelated Stripe event that name them.
    paid_id = conn.execute(
        "SELECT get_or_create_checkout_session(%s, %s, 'pro', p_metadata => %s)",
        (user, email, json.dumps({"referrer": email})),
    ).fetchone()[0]
    conn.execute(
        "SELECT link_stripe_session(%s, 'cs_test_forget_1', 'https://checkout.stripe.test/1', NULL, 0)",
        (paid_id,),
    )
    paid = session_row(conn, paid_id)
    relink(conn, paid)
    paid = session_row(conn, paid_id)
    event = json.loads(checkout_event("completed", paid))
    event["data"]["object"].update(
        customer_email=email, customer_details={"email": email, "name": "Forget Me"}
    )
    assert deliver(client, json.dumps(event)).json["outcome"] == "completed"

    old_id = conn.execute("SELECT get_or_create_checkout_session(%s, %s, 'basic')", (user, email)).fetchone()[
        0
    ]
    conn.execute(
        "SELECT link_stripe_session(%s, 'cs_test_forget_old', 'https://checkout.stripe.test/o', NULL, 0)",
        (old_id,),
    )
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'completed', completed_at = now() - interval '200 days',"
        " created_at = now() - interval '201 days', expires_at = now() - interval '200 days' WHERE id = %s",
        (old_id,),
    )
    assert conn.execute("SELECT archive_completed_checkout_sessions()").fetchone()[0] == 1
    conn.execute("SELECT enqueue_email('reminder', %s, 'no-user-id', NULL)", (email.lower(),))
    conn.execute(
        "SELECT log_error('stripe', %s, %s)",
        (f"card declined for {email}", json.dumps({"user_id": str(user), "plan": "pro"})),
    )
    other_event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "customer.updated",
        "livemode": False,
        "created": 1,
        "data": {
            "object": {
                "id": "cus_forget",
                "object": "customer",
                "email": email,
                "metadata": {"userId": str(user)},
            }
        },
    }
    assert deliver(client, json.dumps(other_event)).json["status"] == "ignored"

    needles = [str(user), email]
    before = find_everywhere(conn, needles)
    assert {table for table, _, _ in before} >= {
        "users",
        "payment_checkout_sessions",
        "payment_checkout_sessions_archive",
        "payment_checkout_stripe_sessions",
        "email_outbox",
        "webhook_events",
        "error_logs",
    }
    events_before = conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0]

    conn.execute("DELETE FROM users WHERE id = %s", (user,))

    assert find_everywhere(conn, needles) == []
    # What is kept: the events (a redelivery is still recognised, not applied again), the error, the bystander.
    assert conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == events_before
    redelivered = deliver(client, json.dumps(event))
    assert redelivered.status_code == 200 and redelivered.json["duplicate"] is True
    assert conn.execute(
        "SELECT payload -> 'data' -> 'object' FROM webhook_events WHERE stripe_event_id = %s", (event["id"],)
    ).fetchone()[0] == {
        "id": paid["stripe_session_id"],
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 2999,
        "currency": "usd",
    }
    assert conn.execute("SELECT message, context FROM error_logs WHERE category = 'stripe'").fetchone() == (
        "card declined for [deleted]",
        {"user_id": "[deleted]", "plan": "pro"},
    )
    assert session_row(conn, kept["id"]) is not None
    assert (
        conn.execute(
            "SELECT count(*) FROM payment_checkout_stripe_sessions WHERE user_id = %s", (bystander,)
        ).fetchone()[0]
        == 1
    )
    # And every rule of sql/tests/ still holds (the rollup, the archive, the Stripe session history).
    from runner.quality import datatests

    assert [r.name for r in datatests.run(conn, project) if not r.passed] == []


def test_a_failed_deletion_leaves_everything_as_it_was(conn, make_user):
    user = make_user()
    row = new_session(conn, user)
    conn.execute("SELECT log_error('stripe', %s)", (f"about {user}",))
    with pytest.raises(psycopg.errors.RaiseException), conn.transaction():
        conn.execute("DELETE FROM users WHERE id = %s", (user,))
        conn.execute("DO $$ BEGIN RAISE EXCEPTION 'the app changed its mind'; END $$")
    assert session_row(conn, row["id"]) is not None
    assert conn.execute("SELECT message FROM error_logs").fetchone()[0] == f"about {user}"
    assert conn.execute("SELECT count(*) FROM payment_checkout_stripe_sessions").fetchone()[0] == 1


# 2. Database failures in error_logs (category database), counted, written once the database answers.


def database_rows(conn) -> list[tuple[str, dict]]:
    return conn.execute(
        "SELECT message, context FROM error_logs WHERE category = 'database' ORDER BY id"
    ).fetchall()


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_a_storm_of_failures_is_one_row_with_its_count(conn):
    failures = error_log.DatabaseErrors("test", interval=3600)
    for _ in range(1000):
        assert failures.note(psycopg.OperationalError("server closed the connection unexpectedly"))
    failures.note(psycopg.errors.SerializationFailure("could not serialize access"))
    assert not failures.note(psycopg.errors.InvalidParameterValue("a caller's bad input"))
    assert not failures.note(ValueError("not the database"))
    assert failures.flush(conn) == 2
    rows = database_rows(conn)
    assert [(c["kind"], c["sqlstate"], c["count"], c["where"]) for _, c in rows] == [
        ("connection", None, 1000, "test"),
        ("serialization", "40001", 1, "test"),
    ]
    assert rows[0][0].startswith("test: database unreachable 1000 times between ")
    # Within the interval nothing more is written; the counts wait (forced, they go).
    failures.note(psycopg.OperationalError("again"))
    assert failures.flush(conn) == 0 and failures.pending == 1
    assert failures.flush(conn, force=True) == 1 and failures.pending == 0


def test_counts_survive_a_database_that_cannot_be_written(conn, db_url):
    failures = error_log.DatabaseErrors("test", interval=0)
    failures.note(psycopg.OperationalError("down"))
    broken = psycopg.connect(db_url, autocommit=True)
    broken.close()
    assert failures.flush(broken) == 0 and failures.pending == 1
    failures.note(psycopg.OperationalError("down"))
    assert failures.flush(conn) == 1
    assert [c["count"] for _, c in database_rows(conn)] == [2]


def test_the_service_logs_failed_sql_rate_limited(app, client, conn, make_user):
    state = app.extensions["runner"]
    state.database_errors.errors.interval = 3600
    row = new_session(conn, make_user())
    conn.execute("ALTER FUNCTION get_checkout_session(uuid, uuid) RENAME TO get_checkout_session_gone")
    try:
        for _ in range(20):
            response = client.get(
                SESSION, query_string={"sessionId": str(row["id"])}, headers=bearer(SERVICE_TOKEN)
            )
            assert response.status_code == 500
    finally:
        conn.execute("ALTER FUNCTION get_checkout_session_gone(uuid, uuid) RENAME TO get_checkout_session")
    assert wait_for(lambda: database_rows(conn))  # the first at once, from the writer's thread
    time.sleep(0.3)
    assert len(database_rows(conn)) == 1  # the rest wait for the interval
    state.database_errors.close()  # shutting down writes what is counted
    rows = database_rows(conn)
    assert len(rows) <= 2 and sum(c["count"] for _, c in rows) == 20
    assert {(c["kind"], c["sqlstate"], c["where"]) for _, c in rows} == {("sql", "42883", "runner serve")}
    assert "get_checkout_session" in rows[0][1]["sample"]


def test_the_service_counts_failures_while_the_database_is_away_and_writes_them_when_it_is_back(
    settings, pg_admin_url, template_db
):
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = make_conninfo(pg_admin_url, dbname=name)
    app = create_app(dataclasses.replace(settings, database_url=url, pool_timeout=0.3, pool_min_size=0))
    state = app.extensions["runner"]
    state.database_errors.retry = 0.2
    try:
        client = app.test_client()
        for _ in range(3):
            assert (
                client.get(
                    SESSION, query_string={"sessionId": str(uuid.uuid4())}, headers=bearer(SERVICE_TOKEN)
                ).status_code
                == 503
            )
        assert client.get("/healthz").status_code == 503
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        with psycopg.connect(url, autocommit=True) as conn:
            assert wait_for(lambda: sum(c["count"] for _, c in database_rows(conn)) == 4), database_rows(conn)
            kinds = {c["kind"] for _, c in database_rows(conn)}
            assert kinds <= {"connection", "timeout"} and kinds
    finally:
        state.close()
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_job_logs_failed_sql_at_once_and_spools_an_unreachable_database(conn, db_url, tmp_path, project):
    from runner.errors import JobFailed
    from runner.jobs import tasks

    spool = tmp_path / "spool.jsonl"
    conn.execute("ALTER FUNCTION expire_old_checkout_sessions(integer) RENAME TO expire_gone")
    try:
        with pytest.raises(JobFailed):
            tasks.run(lambda: psycopg.connect(db_url, autocommit=True), "expire", spool=spool)
    finally:
        conn.execute("ALTER FUNCTION expire_gone(integer) RENAME TO expire_old_checkout_sessions")
    assert [(c["kind"], c["sqlstate"], c["where"], c["count"]) for _, c in database_rows(conn)] == [
        ("sql", "42883", "runner job expire", 1)
    ]

    missing = make_conninfo(db_url, dbname=f"t_missing_{uuid.uuid4().hex[:8]}")
    for _ in range(2):
        with pytest.raises(psycopg.OperationalError):
            tasks.run(lambda: psycopg.connect(missing), "expire", spool=spool)
    # The second run took the first one's line and wrote both back as one: the spool does not grow per run.
    assert [json.loads(line)["count"] for line in spool.read_text().splitlines()] == [2]
    # The next run that reaches the database writes them (one row per kind), and empties the spool.
    assert (
        tasks.run(lambda: psycopg.connect(db_url, autocommit=True), "expire", spool=spool).outcome
        == "succeeded"
    )
    assert spool.read_text() == ""
    latest = database_rows(conn)[-1][1]
    assert (latest["kind"], latest["count"]) == ("connection", 2)
    assert "does not exist" in latest["sample"]

    from runner.reporting import doctor, reports

    summary = reports.run(conn, project, "database_errors", {}).records()
    assert sorted((r["kind"], r["failures"]) for r in summary) == [("connection", 2), ("sql", 1)]
    check = next(c for c in doctor.run(conn, project) if c.name == "database errors")
    assert check.level == "warn" and check.detail.startswith("3 failure(s) in 24 h")
    assert "category = 'database'" in check.hint


def test_the_job_cli_spools_per_database(db_url, tmp_path, monkeypatch, pg_admin_url, template_db):
    from click.testing import CliRunner

    from runner.cli import cli

    monkeypatch.setenv("RUNNER_ERROR_SPOOL", str(tmp_path))
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = make_conninfo(pg_admin_url, dbname=name)
    down = CliRunner().invoke(cli, ["--database-url", url, "job", "expire"])
    assert down.exit_code != 0 and down.output.startswith("Error: ")
    assert [p.name for p in tmp_path.iterdir()] == [error_log.spool_path(url).name]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        up = CliRunner().invoke(cli, ["--database-url", url, "job", "expire"])
        assert up.exit_code == 0, up.output
        with psycopg.connect(url, autocommit=True) as conn:
            assert [(c["where"], c["kind"], c["count"]) for _, c in database_rows(conn)] == [
                ("runner job expire", "connection", 1)
            ]
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_failures_noted_and_written_from_many_threads_at_once_are_each_counted_once(conn, db_url):
    failures = error_log.DatabaseErrors("test", interval=0)
    done = threading.Event()

    def noter():
        for _ in range(500):
            failures.note(psycopg.OperationalError("lost"))

    def writer():
        with psycopg.connect(db_url, autocommit=True) as own:
            while not done.wait(0.005):
                failures.flush(own)
            failures.flush(own, force=True)

    threads = [threading.Thread(target=noter) for _ in range(8)]
    flusher = threading.Thread(target=writer)
    flusher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    flusher.join()
    assert sum(c["count"] for _, c in database_rows(conn)) == 4000 and failures.pending == 0


def test_jobs_saving_and_taking_the_spool_at_once_lose_and_double_nothing(tmp_path):
    spool = tmp_path / "spool.jsonl"
    taken = error_log.DatabaseErrors("collector", interval=0)

    def save(n: int):
        for _ in range(20):
            one = error_log.DatabaseErrors(f"job {n}")
            one.note(psycopg.OperationalError("down"))
            one.save(spool)

    def take():
        for _ in range(20):
            taken.take(spool)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(6)] + [
        threading.Thread(target=take) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken.take(spool)
    assert taken.pending == 6 * 20


def test_cli_checkout_create_takes_metadata(db_url, conn, make_user, fake_stripe, monkeypatch):
    from click.testing import CliRunner

    from runner.cli import cli

    user = make_user()
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fake")
    monkeypatch.setenv("STRIPE_API_BASE", fake_stripe.url)
    base = [
        "--database-url",
        db_url,
        "checkout",
        "create",
        "--user-id",
        str(user),
        "--plan",
        "pro",
        "--metadata",
    ]
    ok = CliRunner().invoke(cli, [*base, '{"campaign": "spring"}', "--format", "json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["session"]["metadata"] == {"campaign": "spring"}
    assert fake_stripe.created()[0]["metadata[campaign]"] == "spring"
    not_json = CliRunner().invoke(cli, [*base, "{campaign"])
    assert not_json.exit_code == 2 and "--metadata" in not_json.output
    reserved = CliRunner().invoke(cli, [*base, '{"plan": "free"}'])
    assert (
        reserved.exit_code == 1 and "Error: metadata key 'plan' is reserved by the project" in reserved.output
    )


def _pay(app, body: str, barrier: threading.Barrier, statuses: list[int]) -> None:
    client = app.test_client()
    barrier.wait()
    for _ in range(5):  # Stripe retries until it gets a 2xx
        response = deliver(client, body)
        statuses.append(response.status_code)
        if response.status_code == 200:
            return


def _delete(db_url: str, user, barrier: threading.Barrier, delay: float, outcomes: list[str]) -> None:
    with psycopg.connect(db_url, autocommit=True) as own:
        barrier.wait()
        time.sleep(delay)  # from "before the payment starts" to "while it is being recorded"
        for _ in range(5):  # the app retries a deletion that was a deadlock's victim
            try:
                own.execute("DELETE FROM users WHERE id = %s", (user,))
                return
            except psycopg.errors.DeadlockDetected:
                outcomes.append("deletion retried")


def test_a_deletion_racing_a_payment_leaves_nothing_of_the_user_either_way(
    app, conn, db_url, make_user, project
):
    """The webhook locks the session then the user; the deletion the user then the sessions: one may be
    chosen as a deadlock victim and retried (Stripe retries a 5xx, the app its deletion). Whichever order,
    nothing of the user is left and every data test holds."""
    outcomes: list[str] = []
    for delay in (0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15):
        user = make_user()
        body = checkout_event("completed", new_session(conn, user))
        barrier = threading.Barrier(2)
        statuses: list[int] = []
        threads = [
            threading.Thread(target=_pay, args=(app, body, barrier, statuses)),
            threading.Thread(target=_delete, args=(db_url, user, barrier, delay, outcomes)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses[-1] == 200, statuses
        # Stripe's next retry: a duplicate of what was recorded (paid, then deleted with the user), or, when
        # the deletion came first, an event that matches no checkout.
        outcomes.append(deliver(app.test_client(), body).json["outcome"].split(" (")[0])
        for table in (
            "users",
            "payment_checkout_sessions",
            "payment_checkout_sessions_archive",
            "payment_checkout_stripe_sessions",
            "email_outbox",
        ):
            column = "id" if table == "users" else "user_id"
            assert (
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                        sql.Identifier(table), sql.Identifier(column)
                    ),
                    (user,),
                ).fetchone()[0]
                == 0
            ), table
        assert (
            conn.execute(
                "SELECT count(*) FROM webhook_events WHERE stripe_event_id = %s", (json.loads(body)["id"],)
            ).fetchone()[0]
            == 1
        )
    from runner.quality import datatests

    assert [r.name for r in datatests.run(conn, project) if not r.passed] == []
    assert set(outcomes) <= {"completed", "rejected: no checkout session matches", "deletion retried"}, (
        outcomes
    )


def _start(app, user, metadata: dict, barrier: threading.Barrier, answers: list) -> None:
    client = app.test_client()
    barrier.wait()
    answers.append(
        client.post(SESSION, json={"plan": "pro", "metadata": metadata}, headers=bearer(user_token(user)))
    )


def test_two_requests_at_once_with_metadata_make_one_row_with_both(app, conn, make_user):
    user = make_user()
    barrier, answers = threading.Barrier(4), []
    threads = [
        threading.Thread(target=_start, args=(app, user, {f"tab{n}": n}, barrier, answers)) for n in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4
    rows = conn.execute(
        "SELECT metadata, attempts FROM payment_checkout_sessions WHERE user_id = %s", (user,)
    ).fetchall()
    assert rows == [({"tab0": 0, "tab1": 1, "tab2": 2, "tab3": 3}, 4)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("paid by A.B+C(D)|x*@Example.COM today", True),
        ("paid by aXb+c(d)|x*@example.com today", False),  # "." is a dot, not any character
        ("paid by a.b+c(d)|x*@example.co", False),
        ("user 6F1C0A4E-3B7E-4C1E-9D62-0D7C1F1F2A10", True),
    ],
)
def test_needles_are_found_literally_and_case_insensitively(conn, text, found):
    needles = ["a.b+c(d)|x*@example.com", "6f1c0a4e-3b7e-4c1e-9d62-0d7c1f1f2a10"]
    assert conn.execute("SELECT mentions_any(%s, %s)", (text, needles)).fetchone()[0] is found
    redacted = conn.execute("SELECT redact_text(%s, %s)", (text, needles)).fetchone()[0]
    assert ("[deleted]" in redacted) is found
    assert conn.execute("SELECT mentions_any(%s, %s)", (redacted, needles)).fetchone()[0] is False
