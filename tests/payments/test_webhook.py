"""POST /api/payments/webhook: signatures, processing once, every event type, any order, refusals, outages."""

from __future__ import annotations

import itertools
import json
import threading
import time

import psycopg
import pytest
import requests

from tests.payments_support import OLD_WEBHOOK_SECRET, checkout_event, new_session, session_row, sign

URL = "/api/payments/webhook"


def deliver(client, body: str, **sign_kwargs):
    return client.post(URL, data=body, headers=sign(body, **sign_kwargs))


def delivery(body: str):
    """What the route hands the library for a body signed with the current secret."""
    from runner.payments import webhook

    return webhook.Delivery.of(body.encode(), sign(body)["Stripe-Signature"])


def counts(conn) -> tuple:
    return conn.execute(
        "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM email_outbox),"
        " (SELECT count(*) FROM payment_checkout_sessions WHERE status = 'completed'),"
        " (SELECT count(*) FROM users WHERE subscription_status = 'active')"
    ).fetchone()


def test_completed_paid_completes_activates_and_queues_the_verification_email(client, conn, make_user):
    user = make_user("paid@example.com")
    row = new_session(conn, user)
    body = checkout_event("completed", row, customer="cus_123")
    response = deliver(client, body)

    assert response.status_code == 200
    assert response.json == {
        "received": True,
        "eventId": json.loads(body)["id"],
        "status": "processed",
        "outcome": "completed",
        "checkoutSessionId": str(row["id"]),
        "duplicate": False,
    }
    after = session_row(conn, row["id"])
    assert (after["status"], after["stripe_customer_id"]) == ("completed", "cus_123")
    assert after["completed_at"] is not None
    assert conn.execute(
        "SELECT subscription_status, subscription_plan, stripe_customer_id FROM users WHERE id = %s", (user,)
    ).fetchone() == ("active", "pro", "cus_123")
    assert conn.execute(
        "SELECT kind, recipient, dedupe_key, checkout_session_id FROM email_outbox"
    ).fetchall() == [("verification", row["email"], f"verification:{row['id']}", row["id"])]
    assert conn.execute(
        "SELECT topic, status, outcome, deliveries, checkout_session_id FROM webhook_events"
    ).fetchone() == ("checkout.session.completed", "processed", "completed", 1, row["id"])


def test_redelivery_is_acknowledged_not_reapplied(client, conn, make_user):
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    assert deliver(client, body).json["duplicate"] is False
    again = deliver(client, body)
    assert (
        again.status_code == 200 and again.json["duplicate"] is True and again.json["outcome"] == "completed"
    )
    assert conn.execute("SELECT deliveries FROM webhook_events").fetchone()[0] == 2
    assert counts(conn) == (1, 1, 1, 1)


def test_no_payment_required_completes(client, conn, make_user):
    row = new_session(conn, make_user())
    assert (
        deliver(client, checkout_event("completed", row, payment_status="no_payment_required")).json[
            "outcome"
        ]
        == "completed"
    )
    assert session_row(conn, row["id"])["status"] == "completed"


def test_unpaid_then_async_success(client, conn, make_user):
    row = new_session(conn, make_user())
    first = deliver(client, checkout_event("completed", row, payment_status="unpaid"))
    assert first.json["outcome"] == "awaiting payment (unpaid)"
    assert session_row(conn, row["id"])["status"] == "pending"
    assert conn.execute("SELECT count(*) FROM email_outbox").fetchone()[0] == 0
    second = deliver(client, checkout_event("async_payment_succeeded", row))
    assert second.json["outcome"] == "completed"
    assert session_row(conn, row["id"])["status"] == "completed"
    assert conn.execute("SELECT count(*) FROM email_outbox").fetchone()[0] == 1


def test_async_failure_fails_the_session(client, conn, make_user):
    row = new_session(conn, make_user())
    deliver(client, checkout_event("completed", row, payment_status="unpaid"))
    assert deliver(client, checkout_event("async_payment_failed", row)).json["outcome"] == "failed"
    assert session_row(conn, row["id"])["status"] == "failed"
    assert (
        conn.execute("SELECT subscription_status FROM users WHERE id = %s", (row["user_id"],)).fetchone()[0]
        == "inactive"
    )


def test_expired_expires_a_pending_session(client, conn, make_user):
    row = new_session(conn, make_user())
    assert (
        deliver(client, checkout_event("expired", row, payment_status="unpaid")).json["outcome"] == "expired"
    )
    assert session_row(conn, row["id"])["status"] == "expired"


# Every ordered pair of the four events that change a session: a completion wins whatever the order;
# otherwise the first event decides and the second changes nothing.
EVENTS = {
    "paid": ("completed", "paid"),
    "async_succeeded": ("async_payment_succeeded", "paid"),
    "async_failed": ("async_payment_failed", "unpaid"),
    "expired": ("expired", "unpaid"),
}
FINAL = {"paid": "completed", "async_succeeded": "completed", "async_failed": "failed", "expired": "expired"}


@pytest.mark.parametrize("first, second", list(itertools.permutations(EVENTS, 2)))
def test_any_order(client, conn, make_user, first, second):
    row = new_session(conn, make_user())
    for name in (first, second):
        kind, payment_status = EVENTS[name]
        response = deliver(client, checkout_event(kind, row, payment_status=payment_status))
        assert response.status_code == 200 and response.json["status"] == "processed"
    completes = {first, second} & {"paid", "async_succeeded"}
    assert session_row(conn, row["id"])["status"] == ("completed" if completes else FINAL[first])
    assert conn.execute("SELECT count(*) FROM email_outbox").fetchone()[0] == (1 if completes else 0)


def test_completion_after_local_expiry_completes(client, conn, make_user):
    row = new_session(conn, make_user())
    conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE id = %s", (row["id"],))
    assert deliver(client, checkout_event("completed", row)).json["outcome"] == "completed"
    assert session_row(conn, row["id"])["status"] == "completed"


def test_completion_of_a_row_never_linked_links_it(client, conn, make_user):
    row = new_session(conn, make_user(), stripe_session_id=None)
    body = checkout_event("completed", row, stripe_session_id="cs_test_unlinked")
    assert deliver(client, body).json["outcome"] == "completed"
    assert session_row(conn, row["id"])["stripe_session_id"] == "cs_test_unlinked"


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"amount_total": 100}, "amount_total 100, expected 2999"),
        ({"currency": "eur"}, "currency eur, expected usd"),
        ({"livemode": True}, "livemode"),
        ({"stripe_session_id": "cs_test_someone_else"}, "is not the one linked"),
    ],
)
def test_a_mismatch_completes_nothing_is_logged_and_acknowledged(client, conn, make_user, change, problem):
    row = new_session(conn, make_user())
    response = deliver(client, checkout_event("completed", row, **change))
    assert response.status_code == 200  # 2xx: Stripe stops retrying; a person looks at error_logs
    assert response.json["status"] == "rejected" and problem in response.json["outcome"]
    assert session_row(conn, row["id"])["status"] == "pending"
    assert counts(conn) == (1, 0, 0, 0)
    logged = conn.execute("SELECT message FROM error_logs WHERE category = 'webhook'").fetchall()
    assert len(logged) == 1 and problem in logged[0][0]


def test_metadata_naming_another_user_is_rejected(client, conn, make_user):
    row = new_session(conn, make_user())
    body = json.loads(checkout_event("completed", row))
    body["data"]["object"]["metadata"]["userId"] = str(make_user())
    response = deliver(client, json.dumps(body))
    assert response.json["status"] == "rejected" and session_row(conn, row["id"])["status"] == "pending"


def test_unknown_checkout_session_is_rejected(client, conn, make_user):
    row = new_session(conn, make_user())
    row = {**row, "id": "00000000-0000-4000-8000-000000000000", "stripe_session_id": "cs_test_nobody"}
    response = deliver(client, checkout_event("completed", row))
    assert response.status_code == 200 and response.json["status"] == "rejected"
    assert "no checkout session matches" in response.json["outcome"]


def test_unknown_event_types_are_recorded_as_ignored(client, conn):
    body = json.dumps(
        {
            "id": "evt_other",
            "type": "invoice.paid",
            "livemode": False,
            "data": {"object": {"id": "in_1", "object": "invoice"}},
        }
    )
    response = deliver(client, body)
    assert response.status_code == 200 and response.json["status"] == "ignored"
    assert conn.execute("SELECT topic, status FROM webhook_events").fetchone() == ("invoice.paid", "ignored")


def test_rotated_secret_still_verifies(client, conn, make_user):
    row = new_session(conn, make_user())
    assert deliver(client, checkout_event("completed", row), secret=OLD_WEBHOOK_SECRET).status_code == 200
    assert session_row(conn, row["id"])["status"] == "completed"


def _refusals(row):
    body = checkout_event("completed", row)
    good = sign(body)
    now = int(time.time())
    return {
        "unsigned": (body, {"Content-Type": "application/json"}),
        "forged": (body, sign(body, secret="whsec_attacker")),
        "stale": (body, sign(body, timestamp=now - 301)),
        "future": (body, sign(body, timestamp=now + 3600)),
        "tampered": (body.replace('"amount_total": 2999', '"amount_total": 1'), good),
        "garbage header": (body, {"Stripe-Signature": "nonsense"}),
    }


@pytest.mark.parametrize("case", ["unsigned", "forged", "stale", "future", "tampered", "garbage header"])
def test_bad_signatures_are_refused_and_nothing_changes(client, conn, make_user, case):
    row = new_session(conn, make_user())
    body, headers = _refusals(row)[case]
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert counts(conn) == (0, 0, 0, 0)
    assert session_row(conn, row["id"])["status"] == "pending"


@pytest.mark.parametrize(
    "body",
    [
        '{"id": "evt_1", "type": ',
        "[1, 2]",
        '{"type": "x", "data": {"object": {}}}',
        '{"id": "evt_1", "type": "checkout.session.completed"}',
    ],
)
def test_signed_malformed_events_are_stored_rejected_with_their_body_and_answered_200(client, conn, body):
    """Stripe signed it, so retrying cannot change it: a trace (row, raw body, reason, error_logs), then 2xx."""
    response = deliver(client, body)
    assert response.status_code == 200 and response.json["status"] == "rejected", response.json
    assert response.json["outcome"].startswith("rejected: ")
    assert counts(conn) == (1, 0, 0, 0)
    raw_body, error, status = conn.execute("SELECT raw_body, error, status FROM webhook_events").fetchone()
    assert (raw_body, status) == (body, "rejected") and error
    assert conn.execute("SELECT count(*) FROM error_logs WHERE category = 'webhook'").fetchone()[0] == 1
    again = deliver(client, body)
    assert again.json["duplicate"] is True and again.json["eventId"] == response.json["eventId"]
    assert conn.execute("SELECT deliveries FROM webhook_events").fetchone()[0] == 2


def test_oversized_body_is_413(client, conn):
    body = json.dumps({"id": "evt_big", "type": "x", "data": {"object": {"pad": "x" * (1024 * 1024)}}})
    response = deliver(client, body)
    assert response.status_code == 413 and response.json["error"]["code"] == "request_entity_too_large"
    assert counts(conn) == (0, 0, 0, 0)


def test_ten_concurrent_deliveries_are_processed_once(live_server, conn, make_user):
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    headers = sign(body)
    barrier = threading.Barrier(10)
    results = []

    def post():
        barrier.wait()
        results.append(requests.post(live_server.url + URL, data=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 10
    assert sorted(r.json()["duplicate"] for r in results) == [False] + [True] * 9
    assert conn.execute("SELECT count(*), sum(deliveries) FROM webhook_events").fetchone() == (1, 10)
    assert counts(conn) == (1, 1, 1, 1)


def test_database_down_is_503_and_the_redelivery_succeeds(client, conn, make_user, db_url, pg_admin_url):
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        # The database goes away: no new connections, and every open one (the pool's too) is cut.
        admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        try:
            down = deliver(client, body)
            assert down.status_code == 503 and down.json["error"]["code"] == "database_unavailable"
            assert client.get("/healthz").status_code == 503
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')
    up = deliver(client, body)  # Stripe's retry
    assert up.status_code == 200 and up.json["outcome"] == "completed" and up.json["duplicate"] is False
    with psycopg.connect(db_url, autocommit=True) as fresh:
        assert counts(fresh) == (1, 1, 1, 1)
    assert client.get("/healthz").status_code == 200


def test_an_unexpected_failure_is_500_stored_failed_and_the_redelivery_processes_it(client, conn, make_user):
    """Failed SQL while processing (here: a function gone): 500, so Stripe retries; the event is stored as
    failed and in error_logs; the retry, once the cause is fixed, processes it."""
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    conn.execute(
        "ALTER FUNCTION complete_checkout_session(uuid, text, text) RENAME TO complete_checkout_gone"
    )
    try:
        failed = deliver(client, body)
    finally:
        conn.execute(
            "ALTER FUNCTION complete_checkout_gone(uuid, text, text) RENAME TO complete_checkout_session"
        )
    assert failed.status_code == 500 and failed.json["error"]["code"] == "processing_failed"
    (status, error), *others = conn.execute("SELECT status, error FROM webhook_events").fetchall()
    assert others == [] and status == "failed" and "complete_checkout_session" in error
    assert conn.execute("SELECT count(*) FROM error_logs WHERE category = 'webhook'").fetchone()[0] == 1
    retry = deliver(client, body)
    assert (
        retry.status_code == 200 and retry.json["outcome"] == "completed" and retry.json["duplicate"] is False
    )
    assert counts(conn) == (1, 1, 1, 1)


def test_replay_reprocesses_a_stored_event_idempotently(client, conn, make_user, db_url):
    from click.testing import CliRunner

    from runner.cli import cli

    row = new_session(conn, make_user())
    body = checkout_event("completed", row, amount_total=1)
    assert deliver(client, body).json["status"] == "rejected"
    event_id = json.loads(body)["id"]
    # Support fixes the cause (here: the stored amount), then replays.
    conn.execute(
        "UPDATE webhook_events SET payload = jsonb_set(payload, '{data,object,amount_total}', '2999')"
    )
    result = CliRunner().invoke(cli, ["--database-url", db_url, "webhook", "replay", event_id])
    assert result.exit_code == 0 and f"{event_id}: processed (completed)" in result.output
    again = CliRunner().invoke(cli, ["--database-url", db_url, "webhook", "replay", event_id])
    assert again.exit_code == 0 and "processed (already completed)" in again.output
    assert counts(conn) == (1, 1, 1, 1)
    missing = CliRunner().invoke(cli, ["--database-url", db_url, "webhook", "replay", "evt_nope"])
    assert missing.exit_code == 1 and "Error: unknown webhook event: 'evt_nope'" in missing.output


def test_other_methods_are_405_with_a_json_body(client, conn):
    response = client.get(URL)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json["error"]["code"] == "method_not_allowed"
    assert counts(conn) == (0, 0, 0, 0)


def test_a_connection_whose_statements_were_deallocated_prepares_again(app, conn, make_user):
    """The service prepares its statement once per pooled connection; DEALLOCATE ALL (a pooler, a DBA) must
    not break the next delivery on that connection."""
    from runner.payments import webhook

    state = app.extensions["runner"]
    first, second = new_session(conn, make_user()), new_session(conn, make_user())
    with state.connection() as pooled:
        assert (
            webhook.handle(pooled, delivery(checkout_event("completed", first)), False).outcome == "completed"
        )
        pooled.execute("DEALLOCATE ALL")
        assert (
            webhook.handle(pooled, delivery(checkout_event("completed", second)), False).outcome
            == "completed"
        )
    assert counts(conn) == (2, 2, 2, 2)


def test_a_row_left_received_is_processed_by_the_next_delivery(client, conn, make_user):
    """A row written as 'received' (by an older runner, or by hand) is processed once, by the next delivery."""
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    conn.execute(
        "INSERT INTO webhook_events (stripe_event_id, topic, payload) VALUES (%s, %s, %s::jsonb)",
        (json.loads(body)["id"], "checkout.session.completed", body),
    )
    response = deliver(client, body)
    assert response.json["outcome"] == "completed" and response.json["duplicate"] is False
    assert conn.execute("SELECT status, deliveries FROM webhook_events").fetchone() == ("processed", 2)
    assert deliver(client, body).json["duplicate"] is True
    assert counts(conn) == (1, 1, 1, 1)


def test_a_connection_cut_mid_delivery_is_database_unavailable_and_leaves_the_pool(
    app, client, conn, make_user, pg_admin_url
):
    """The socket of the connection a delivery holds breaks: DatabaseUnavailable (a 503: Stripe retries), the
    pool drops that connection, and the redelivery completes the session."""
    from runner.errors import DatabaseUnavailable
    from runner.payments import webhook

    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    state = app.extensions["runner"]
    with state.connection() as pooled:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pooled.info.backend_pid,))
        with pytest.raises(DatabaseUnavailable):
            webhook.handle(pooled, delivery(body), False)
    assert counts(conn) == (0, 0, 0, 0)
    retried = deliver(client, body)
    assert retried.status_code == 200 and retried.json["outcome"] == "completed"
    assert counts(conn) == (1, 1, 1, 1)


def test_a_row_without_currency_is_checked_against_its_plan(client, conn, make_user):
    """Rows written by the reference's own INSERT have no currency: the plan's is what the payment must match."""
    paid, wrong = new_session(conn, make_user()), new_session(conn, make_user())
    conn.execute(
        "UPDATE payment_checkout_sessions SET currency = NULL WHERE id = ANY(%s)",
        ([paid["id"], wrong["id"]],),
    )
    assert (
        deliver(client, checkout_event("completed", session_row(conn, paid["id"]))).json["outcome"]
        == "completed"
    )
    rejected = deliver(client, checkout_event("completed", session_row(conn, wrong["id"]), currency="eur"))
    assert rejected.json["outcome"] == "rejected: currency eur, expected usd"
    assert [session_row(conn, r["id"])["status"] for r in (paid, wrong)] == ["completed", "pending"]
