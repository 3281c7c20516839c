"""The database's own check of Stripe's signature (sql/functions/webhook_signature.sql), its secrets
(`runner webhook secret set|list|remove`) and its strict reading of a signed event (issue 14, points 2 and 4)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import psycopg
import pytest
import stripe
from click.testing import CliRunner

from runner.cli import cli
from tests.payments_support import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, checkout_event, new_session, sign

URL = "/api/payments/webhook"


def invoke(db_url: str, *args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["--database-url", db_url, *args], env=env or {}, catch_exceptions=False)


def problem(conn, body: str, header: str | None, tolerance: int = 300) -> str | None:
    return conn.execute("SELECT stripe_signature_problem(%s, %s, %s)", (body, header, tolerance)).fetchone()[
        0
    ]


# -- HMAC-SHA256 in SQL is Python's ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "secret",
    ["whsec_short1", "whsec_" + "k" * 58, "whsec_" + "k" * 59, "whsec_" + "é" * 80, "whsec_test_current"],
)
def test_the_sql_hmac_is_the_standard_one(conn, secret):
    """Keys shorter than, exactly, one byte longer than and far longer than SHA-256's 64-byte block (hashed
    first), and multi-byte UTF-8, against Python's hmac module."""
    message = "1700000000." + json.dumps({"id": "evt_1", "note": "Zürich 💳"}, ensure_ascii=False)
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    got = conn.execute(
        "SELECT encode(sha256(k.outer_key || sha256(k.inner_key || convert_to(%s, 'UTF8'))), 'hex')"
        " FROM webhook_hmac_keys(%s) k",
        (message, secret),
    ).fetchone()[0]
    assert got == expected


def test_signatures_are_read_like_stripes(conn):
    conn.execute("SELECT set_webhook_secret(%s)", (WEBHOOK_SECRET,))
    body = '{"id": "evt_sig", "type": "x"}'
    now = int(time.time())
    good = sign(body, timestamp=now)["Stripe-Signature"]
    good_v1 = good.split("v1=")[1].split(",")[0]
    assert problem(conn, body, good) is None
    # Several v1 (Stripe signs with each of an endpoint's secrets while one is rolled): any one verifies.
    assert problem(conn, body, f"t={now},v1={'0' * 64},v1={good_v1},v0=abc") is None
    assert problem(conn, body, f"v1={good_v1},t={now}") is None  # order does not matter
    assert problem(conn, body, None) == "missing Stripe-Signature header"
    assert problem(conn, body, f"v1={good_v1}") == "Stripe-Signature has no timestamp"
    assert problem(conn, body, f"t=abc,v1={good_v1}") == "Stripe-Signature has no timestamp"
    assert problem(conn, body, f"t={now}") == "Stripe-Signature has no v1 signature"
    assert (
        problem(conn, body, f"t={now}, v1={good_v1}") == "Stripe-Signature has no v1 signature"
    )  # as stripe
    assert problem(conn, body + " ", good).startswith("Stripe-Signature does not verify")
    assert problem(conn, body, good.upper().replace("T=", "t=").replace("V1=", "v1=")).startswith(
        "Stripe-Signature does not verify"
    )
    stale = sign(body, timestamp=now - 301)["Stripe-Signature"]
    assert problem(conn, body, stale).startswith("Stripe-Signature timestamp is 30")
    assert problem(conn, body, stale, tolerance=600) is None
    future = sign(body, timestamp=now + 400)["Stripe-Signature"]
    assert "in the future" in problem(conn, body, future)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        problem(conn, body, good, tolerance=0)
    # The stripe library agrees with each verdict on the good and the stale header.
    stripe.WebhookSignature.verify_header(body, good, WEBHOOK_SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, stale, WEBHOOK_SECRET, 300)


def test_rotation_any_stored_secret_verifies_and_a_removed_one_no_longer_does(conn):
    body = '{"id": "evt_rot", "type": "x"}'
    assert problem(conn, body, sign(body)["Stripe-Signature"]).startswith(
        "no webhook signing secret is configured in the database"
    )
    conn.execute("SELECT set_webhook_secret(%s)", (OLD_WEBHOOK_SECRET,))
    conn.execute("SELECT set_webhook_secret(%s)", (WEBHOOK_SECRET,))
    assert problem(conn, body, sign(body, secret=OLD_WEBHOOK_SECRET)["Stripe-Signature"]) is None
    assert problem(conn, body, sign(body)["Stripe-Signature"]) is None
    assert conn.execute("SELECT remove_webhook_secret(%s)", (OLD_WEBHOOK_SECRET,)).fetchone()[0] is True
    assert problem(conn, body, sign(body, secret=OLD_WEBHOOK_SECRET)["Stripe-Signature"]).startswith(
        "Stripe-Signature does not verify"
    )
    assert problem(conn, body, sign(body)["Stripe-Signature"]) is None


# -- the CLI ------------------------------------------------------------------------------------------------------
def test_webhook_secret_set_list_remove(db_url):
    added = invoke(
        db_url,
        "webhook",
        "secret",
        "set",
        "--format",
        "json",
        env={"STRIPE_WEBHOOK_SECRET": f"{WEBHOOK_SECRET}, {OLD_WEBHOOK_SECRET}"},
    )
    assert added.exit_code == 0, added.output
    rows = json.loads(added.output)
    fingerprint = hashlib.sha256(WEBHOOK_SECRET.encode()).hexdigest()[:16]
    assert [(r["fingerprint"], r["hint"], r["added"]) for r in rows] == [
        (fingerprint, "whsec_…rent", True),
        (hashlib.sha256(OLD_WEBHOOK_SECRET.encode()).hexdigest()[:16], "whsec_…ious", True),
    ]
    again = invoke(db_url, "webhook", "secret", "set", WEBHOOK_SECRET)
    assert again.exit_code == 0 and again.output == f"{fingerprint} whsec_…rent: already stored\n"
    listed = invoke(db_url, "webhook", "secret", "list")
    assert listed.exit_code == 0 and [line.split()[0] for line in listed.output.splitlines()] == [
        fingerprint,
        rows[1]["fingerprint"],
    ]
    assert WEBHOOK_SECRET not in listed.output and OLD_WEBHOOK_SECRET not in added.output
    removed = invoke(db_url, "webhook", "secret", "remove", rows[1]["fingerprint"])
    assert removed.exit_code == 0 and removed.output == f"removed {rows[1]['fingerprint']}\n"
    missing = invoke(db_url, "webhook", "secret", "remove", rows[1]["fingerprint"])
    assert missing.exit_code == 1
    assert missing.output == (
        f"Error: no webhook secret with fingerprint '{rows[1]['fingerprint']}' "
        "(`runner webhook secret list`)\n"
    )
    assert (
        json.loads(invoke(db_url, "webhook", "secret", "list", "--format", "json").output)[0]["fingerprint"]
        == fingerprint
    )


def test_webhook_secret_set_refuses_nothing_and_bad_secrets(db_url):
    none = invoke(db_url, "webhook", "secret", "set", env={"STRIPE_WEBHOOK_SECRET": ""})
    assert none.exit_code == 1
    assert none.output == "Error: no webhook signing secret given (pass one, or set STRIPE_WEBHOOK_SECRET)\n"
    bad = invoke(db_url, "webhook", "secret", "set", "short")
    assert bad.exit_code == 1
    assert bad.output == (
        "Error: a webhook signing secret is 8 to 1000 characters without spaces or commas (whsec_...)\n"
    )


def test_webhook_secrets_are_the_owners_only(db_url, pg_admin_url, project):
    """As the service's role, `runner webhook secret ...` is one line naming the owner, exit 1."""
    import uuid

    from psycopg.conninfo import make_conninfo

    name, password = f"t_login_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {project.settings['app_role']}"
        )
    try:
        url = make_conninfo(db_url, user=name, password=password)
        for args in (("set", WEBHOOK_SECRET), ("list",), ("remove", "0123456789abcdef")):
            refused = invoke(url, "webhook", "secret", *args)
            assert refused.exit_code == 1, refused.output
            assert refused.output.startswith("Error: only the database owner may manage webhook secrets"), (
                refused.output
            )
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
            )
            admin.execute(f"DROP ROLE {name}")


# -- a signed event that cannot be processed as sent leaves a trace (point 4) ---------------------------------
def _event(row, **changes) -> str:
    body = json.loads(checkout_event("completed", row))
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return json.dumps(body)


CASES = {
    "livemode maybe": ({"livemode": "maybe"}, 'livemode must be a JSON boolean, got "maybe"'),
    "livemode as a string": ({"livemode": "false"}, 'livemode must be a JSON boolean, got "false"'),
    "amount as a string": (
        {"data__object__amount_total": "2999"},
        'data.object.amount_total must be a JSON number, got "2999"',
    ),
    "over-long customer": (
        {"data__object__customer": "cus_" + "x" * 300},
        "data.object.customer is longer than 255 characters",
    ),
    "customer as a number": (
        {"data__object__customer": 42},
        "data.object.customer must be a JSON string, got 42",
    ),
    "metadata as a list": ({"data__object__metadata": ["x"]}, "data.object.metadata must be a JSON object"),
    "no data": ({"data": None}, "data.object must be a JSON object"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_signed_event_of_the_wrong_shape_is_stored_rejected_and_answered_2xx(client, conn, make_user, case):
    changes, reason = CASES[case]
    row = new_session(conn, make_user())
    body = _event(row, **changes)
    response = client.post(URL, data=body, headers=sign(body))
    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["outcome"]) == ("rejected", f"rejected: {reason}")
    stored = conn.execute("SELECT stripe_event_id, status, error, raw_body FROM webhook_events").fetchall()
    assert stored == [(json.loads(body)["id"], "rejected", reason, body)]
    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE id = %s", (row["id"],)).fetchone()[0]
        == "pending"
    )
    logged = conn.execute("SELECT message FROM error_logs WHERE category = 'webhook'").fetchall()
    assert len(logged) == 1 and reason in logged[0][0]
    # Stripe's retry of it is a duplicate, not a second row or a second error_logs line.
    assert client.post(URL, data=body, headers=sign(body)).json["duplicate"] is True
    assert conn.execute("SELECT count(*) FROM error_logs").fetchone()[0] == 1


def test_the_right_types_still_complete(client, conn, make_user):
    row = new_session(conn, make_user())
    body = _event(row)
    response = client.post(URL, data=body, headers=sign(body))
    assert response.json["outcome"] == "completed"
    assert conn.execute("SELECT raw_body FROM webhook_events").fetchone()[0] is None


def test_a_delivery_the_database_cannot_verify_is_503_naming_the_fix(client, conn, make_user, caplog):
    """The service's STRIPE_WEBHOOK_SECRET is not in the database (a deployment that skipped `runner webhook
    secret set`): 503 so Stripe retries, nothing stored, one log line saying what to run."""
    conn.execute("DELETE FROM webhook_secrets")
    row = new_session(conn, make_user())
    body = _event(row)
    response = client.post(URL, data=body, headers=sign(body))
    assert response.status_code == 503 and response.json["error"]["code"] == "webhook_secret_not_in_database"
    assert conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 0
    assert any("runner webhook secret set" in r.getMessage() for r in caplog.records)


def test_a_rejected_event_shows_in_recent_webhooks_and_doctor(client, conn, make_user, project):
    from runner.reporting import doctor, reports
    from runner.reporting.alerts import Thresholds

    row = new_session(conn, make_user())
    body = _event(row, livemode="maybe")
    assert client.post(URL, data=body, headers=sign(body)).json["status"] == "rejected"
    unparsed = '{"id": "evt_broken", "type": '
    assert client.post(URL, data=unparsed, headers=sign(unparsed)).json["status"] == "rejected"

    listed = reports.run(conn, project, "recent_webhooks", {"topic": "all", "status": "rejected"}).records()
    assert [(r["topic"], r["error"][:30]) for r in listed] == [
        ("(unparsed)", "the body is not JSON PostgreSQ"),
        ("checkout.session.completed", "livemode must be a JSON boolea"),
    ]
    assert (
        reports.run(conn, project, "recent_webhooks", {"status": "rejected"}).records()[0]["stripe_event_id"]
        == json.loads(body)["id"]
    )  # the default topic still filters, like the reference's query
    check = {c.name: c for c in doctor.run(conn, project, Thresholds())}["webhooks"]
    assert check.level == "warn" and check.detail == "2 signed event(s) rejected in 24 h (rejected 2)"
    assert "recent_webhooks -p status=rejected -p topic=all" in check.hint


def test_the_same_secret_set_by_several_at_once_is_stored_once(db_url):
    """Two deploy steps (or `runner serve` processes seeding an empty table) storing one secret together."""
    import threading

    from runner.payments import webhook_secrets

    results, failures = [], []

    def store() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                results.extend(webhook_secrets.set_secrets(conn, [WEBHOOK_SECRET]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert sorted(r.added for r in results) == [False] * 7 + [True]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_secrets").fetchone()[0] == 1


def test_concurrent_deliveries_of_one_malformed_event_leave_one_row(app, conn, make_user):
    """Stripe retrying a signed, malformed event while the first delivery is in flight: one rejected row,
    one error_logs row, every answer 200, the others duplicates."""
    import threading

    row = new_session(conn, make_user())
    body = _event(row, livemode="maybe")
    answers, failures = [], []

    def deliver() -> None:
        try:
            answers.append(app.test_client().post(URL, data=body, headers=sign(body)))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == [] and [a.status_code for a in answers] == [200] * 8
    assert sorted(a.json["duplicate"] for a in answers) == [False] + [True] * 7
    assert conn.execute("SELECT status, deliveries FROM webhook_events").fetchall() == [("rejected", 8)]
    assert conn.execute("SELECT count(*) FROM error_logs").fetchone()[0] == 1


def test_apply_stores_stripe_webhook_secret_in_an_empty_table_only(empty_db_url):
    """How the secret reaches the database on a fresh deployment, or one upgraded to the database's own check:
    `runner apply` (the owner) with STRIPE_WEBHOOK_SECRET set fills an empty webhook_secrets; it never adds to
    or changes a table someone filled (a rotation is `runner webhook secret set`)."""
    first = invoke(
        empty_db_url, "apply", env={"STRIPE_WEBHOOK_SECRET": f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}"}
    )
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines()[-1] == (
        "Stored 2 webhook signing secret(s) of STRIPE_WEBHOOK_SECRET in the "
        "empty webhook_secrets (`runner webhook secret list`)."
    )
    again = invoke(empty_db_url, "apply", env={"STRIPE_WEBHOOK_SECRET": "whsec_another_one_123"})
    assert again.exit_code == 0 and "Stored" not in again.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_secrets").fetchone()[0] == 2
        body = '{"id": "evt_apply", "type": "x"}'
        assert (
            conn.execute(
                "SELECT stripe_signature_problem(%s, %s, 300)", (body, sign(body)["Stripe-Signature"])
            ).fetchone()[0]
            is None
        )
    unset = invoke(empty_db_url, "apply", env={"STRIPE_WEBHOOK_SECRET": None})
    assert unset.exit_code == 0 and "Stored" not in unset.stderr
