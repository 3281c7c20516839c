"""Property test of the whole checkout flow with Stripe's webhooks: random interleavings of create-checkout
(the API against the fake Stripe), what customers do at Stripe (pay, pay later, fail, let it expire), webhook
deliveries (late, out of order, duplicated), the expire job and cancellations (PATCH), across users and plans.

Stripe's side follows Stripe's rules (only an open session can be paid or expire; only an awaiting one
succeeds or fails later); our side sees the resulting events in any order, any number of times. After every
step the invariants of DESIGN.md hold:

- at most one pending session per (user, plan);
- no backward transitions (pending -> completed | expired | canceled | failed; those -> completed);
- a completed session implies an active subscription;
- each event is processed at most once: one webhook_events row per event id counting every delivery, the
  first delivery not a duplicate and every later one a duplicate with the same outcome, one verification
  email per completed session;
- nothing paid is lost: once a paid event is delivered its session is completed, and at the end (every event
  delivered, as Stripe retries until it gets a 2xx) a session is completed exactly when one of its Stripe
  sessions was paid.

Examples: 40 by default; RELIABILITY_SCALE=N runs N times as many (docs/reliability.md).
"""

from __future__ import annotations

import json
import time
import uuid

from hypothesis import event, given
from hypothesis import strategies as st

from tests.payments_support import SERVICE_TOKEN, bearer, sign, user_token
from tests.reliability_support import budget

CREATE = "/api/payments/create-checkout"
SESSION = "/api/payments/checkout-session"
WEBHOOK = "/api/payments/webhook"
PLANS = ("basic", "pro", "enterprise")
ALLOWED = {("pending", s) for s in ("completed", "expired", "canceled", "failed")} | {
    (s, "completed") for s in ("expired", "canceled", "failed")
}
# What a customer can do at Stripe, from which state of the Stripe session, to which, with which events.
STRIPE = {
    "pay": ("open", "paid", [("completed", "paid")]),
    "pay_later": ("open", "awaiting", [("completed", "unpaid")]),
    "async_succeeds": ("awaiting", "paid", [("async_payment_succeeded", "paid")]),
    "async_fails": ("awaiting", "failed", [("async_payment_failed", "unpaid")]),
    "expire": ("open", "expired", [("expired", "unpaid")]),
}
FAKE_STATUS = {"paid": "complete", "awaiting": "complete", "failed": "complete", "expired": "expired"}

users = st.integers(0, 2)
plans = st.sampled_from(PLANS)
create = st.tuples(st.just("create"), users, plans)
customer = st.tuples(st.just("stripe"), st.sampled_from(sorted(STRIPE)), st.integers(0, 50), st.booleans())
operation = st.one_of(
    create,
    customer,
    customer,
    st.tuples(st.just("deliver"), st.integers(0, 50)),
    st.tuples(st.just("row_only"), users, plans),
    st.tuples(st.just("expire_job"), users, plans),
    st.tuples(st.just("cancel"), users, plans),
)


class Model:
    """What Stripe knows and what has been delivered, for one example."""

    def __init__(self, client, fake, conn):
        self.client, self.fake, self.conn = client, fake, conn
        self.users = [
            conn.execute(
                "INSERT INTO users (email) VALUES (%s) RETURNING id",
                (f"prop-{uuid.uuid4().hex[:10]}@example.com",),
            ).fetchone()[0]
            for _ in range(3)
        ]
        self.stripe_state: dict[
            str, str
        ] = {}  # Stripe session id -> open | paid | awaiting | failed | expired
        self.events: list[dict] = []  # {"id", "body", "paid", "row", "delivered": n, "outcome"}
        self.statuses: dict = {}

    # -- the world ------------------------------------------------------------------------------------

    def rows(self) -> dict:
        return {
            r[0]: r[1:]
            for r in self.conn.execute(
                "SELECT id, user_id, subscription_plan, status, stripe_session_id FROM payment_checkout_sessions "
                "WHERE user_id = ANY(%s)",
                (self.users,),
            )
        }

    def latest_row(self, user, plan):
        row = self.conn.execute(
            "SELECT id FROM payment_checkout_sessions WHERE user_id = %s AND "
            "subscription_plan = %s ORDER BY created_at DESC, id DESC LIMIT 1",
            (self.users[user], plan),
        ).fetchone()
        return row[0] if row else None

    def stripe_sessions(self) -> list[dict]:
        mine = {str(u) for u in self.users}
        with self.fake.lock:
            return [s for s in self.fake.sessions.values() if s["metadata"].get("userId") in mine]

    # -- operations -----------------------------------------------------------------------------------

    def apply(self, op) -> None:
        getattr(self, op[0])(*op[1:])

    def create(self, user, plan):
        response = self.client.post(
            CREATE, json={"plan": plan, "userId": str(self.users[user])}, headers=bearer(SERVICE_TOKEN)
        )
        if response.status_code == 409:
            # Only when Stripe says the row's session is paid (or awaiting payment) and the news is on its way.
            row = self.rows()[self.latest_row(user, plan)]
            assert row[2] == "pending" and self.stripe_state.get(row[3]) in ("paid", "awaiting", "failed"), (
                response.json,
                row,
                self.stripe_state.get(row[3]),
            )
            return
        assert response.status_code == 200, response.json
        session = response.json["session"]
        assert (
            session["status"] == "pending"
            and self.stripe_state.setdefault(session["stripeSessionId"], "open") == "open"
        ), (session, self.stripe_state)

    def row_only(self, user, plan):
        response = self.client.post(
            SESSION, json={"plan": plan, "userId": str(self.users[user])}, headers=bearer(SERVICE_TOKEN)
        )
        assert response.status_code == 200 and response.json["session"]["status"] == "pending", response.json

    def stripe(self, action, index, deliver_now):
        """A customer acts on one of the Stripe sessions (if its state allows); Stripe sends the events."""
        sessions = self.stripe_sessions()
        before, after, events = STRIPE[action]
        candidates = [s for s in sessions if self.stripe_state.get(s["id"], "open") == before]
        if not candidates:
            return
        session = candidates[index % len(candidates)]
        self.stripe_state[session["id"]] = after
        with self.fake.lock:
            session["status"] = FAKE_STATUS[after]
        for kind, payment_status in events:
            obj = {
                **session,
                "status": "expired" if kind == "expired" else "complete",
                "payment_status": payment_status,
                "customer": f"cus_{uuid.uuid4().hex[:8]}",
            }
            event_id = f"evt_{uuid.uuid4().hex}"
            body = json.dumps(
                {
                    "id": event_id,
                    "object": "event",
                    "type": f"checkout.session.{kind}",
                    "livemode": False,
                    "created": int(time.time()),
                    "data": {"object": obj},
                }
            )
            self.events.append(
                {
                    "id": event_id,
                    "body": body,
                    "paid": payment_status == "paid",
                    "row": uuid.UUID(session["metadata"]["checkoutSessionId"]),
                    "delivered": 0,
                    "outcome": None,
                }
            )
            if deliver_now:
                self.deliver(len(self.events) - 1)

    def deliver(self, index):
        if not self.events:
            return
        event = self.events[index % len(self.events)]
        response = self.client.post(WEBHOOK, data=event["body"], headers=sign(event["body"]))
        assert response.status_code == 200, response.json
        answer = response.json
        # Events Stripe's rules allow are never rejected: a rejection would need a person.
        assert answer["status"] in ("processed", "ignored"), answer
        assert answer["duplicate"] is (event["delivered"] > 0), (answer, event["delivered"])
        if event["delivered"]:
            assert (answer["status"], answer["outcome"]) == event["outcome"], (answer, event["outcome"])
        else:
            event["outcome"] = (answer["status"], answer["outcome"])
        event["delivered"] += 1
        if event["paid"]:
            status = self.rows()[event["row"]][2]
            assert status == "completed", ("paid and delivered, yet", status, answer)

    def expire_job(self, user, plan):
        self.conn.execute(
            "UPDATE payment_checkout_sessions SET created_at = now() - interval '2 days', "
            "expires_at = now() - interval '1 day' WHERE user_id = %s AND subscription_plan = %s "
            "AND status = 'pending'",
            (self.users[user], plan),
        )
        self.conn.execute("SELECT expire_old_checkout_sessions()")

    def cancel(self, user, plan):
        session_id = self.latest_row(user, plan)
        if session_id is None:
            return
        before = self.rows()[session_id][2]
        response = self.client.patch(
            SESSION,
            json={"sessionId": str(session_id), "status": "canceled"},
            headers=bearer(user_token(self.users[user])),
        )
        expected = 200 if before in ("pending", "canceled") else 409
        assert response.status_code == expected, (before, response.json)

    # -- invariants -----------------------------------------------------------------------------------

    def check(self, op) -> None:
        rows = self.rows()
        for sid, (_, _, status, _) in rows.items():
            old = self.statuses.get(sid)
            assert old is None or old == status or (old, status) in ALLOWED, (op, old, status)
        self.statuses = {sid: r[2] for sid, r in rows.items()}
        pending = [(u, p) for (u, p, s, _) in rows.values() if s == "pending"]
        assert len(pending) == len(set(pending)), (op, "two pending sessions for one (user, plan)")
        completed_users = {u for (u, _, s, _) in rows.values() if s == "completed"}
        if completed_users:
            inactive = self.conn.execute(
                "SELECT count(*) FROM users WHERE id = ANY(%s) AND subscription_status <> 'active'",
                (list(completed_users),),
            ).fetchone()[0]
            assert inactive == 0, (op, "a completed session without an active subscription")
        delivered = {e["id"]: e["delivered"] for e in self.events if e["delivered"]}
        stored = dict(
            self.conn.execute(
                "SELECT stripe_event_id, deliveries FROM webhook_events WHERE stripe_event_id = ANY(%s)",
                (list(delivered) or [""],),
            ).fetchall()
        )
        assert stored == delivered, (
            op,
            "webhook_events must hold each delivered event once, counting deliveries",
        )
        emails = dict(
            self.conn.execute(
                "SELECT checkout_session_id, count(*) FROM email_outbox WHERE kind = 'verification' AND "
                "checkout_session_id = ANY(%s) GROUP BY 1",
                (list(rows),),
            ).fetchall()
        )
        assert emails == {sid: 1 for sid, r in rows.items() if r[2] == "completed"}, (op, emails)

    def finish(self) -> None:
        """Stripe retries every event until it is acknowledged: deliver what never was, then nothing paid
        is lost and nothing unpaid is completed."""
        for index, sent in enumerate(self.events):
            if not sent["delivered"]:
                self.deliver(index)
        self.check(("finish",))
        paid_rows = {e["row"] for e in self.events if e["paid"]}
        rows = self.rows()
        for sid, (_, _, status, _) in rows.items():
            assert (status == "completed") == (sid in paid_rows), (sid, status, sid in paid_rows)
        # What the example exercised (pytest --hypothesis-show-statistics).
        statuses = {r[2] for r in rows.values()}
        event(f"final statuses: {'/'.join(sorted(statuses)) or 'no sessions'}")
        event(f"events: {min(len(self.events), 5)}{'+' if len(self.events) >= 5 else ''}")
        if any(e["delivered"] > 1 for e in self.events):
            event("an event delivered twice or more")
        if any(e["outcome"] and e["outcome"][0] == "ignored" for e in self.events):
            event("an event ignored (replaced Stripe session)")


@budget(40)
@given(first=st.lists(create, min_size=1, max_size=4), ops=st.lists(operation, min_size=8, max_size=40))
def test_checkout_and_webhook_interleavings_keep_invariants(client, fake_stripe, conn, first, ops):
    model = Model(client, fake_stripe, conn)
    for op in first + ops:
        model.apply(op)
        model.check(op)
    model.finish()
