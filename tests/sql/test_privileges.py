"""Least privilege: the roles `runner apply` maintains (sql/functions/privileges.sql).

The service runs as a login role that is a member of the application role, the jobs as one of the jobs role:
they work end to end, yet neither role can read or write a table, nor call a function it is not listed for,
nor record a Stripe event without Stripe's signature. The reporting role runs every report and /metrics, and
cannot write. PUBLIC has nothing.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner import migrate
from runner import project as project_mod
from runner.errors import MigrationError
from runner.jobs import tasks as jobs
from runner.payments import webhook
from runner.reporting import metrics, reports
from runner.web.app import create_app
from tests.conftest import SQL_DIR
from tests.jobs.test_jobs import add_sessions
from tests.jobs.test_mail import SmtpServer, config
from tests.payments_support import bearer, checkout_event, sign, user_token

CREATE = "/api/payments/create-checkout"
SESSION = "/api/payments/checkout-session"
WEBHOOK = "/api/payments/webhook"

# What the service calls: exactly what the application role may EXECUTE.
APP_FUNCTIONS = {
    "get_or_create_checkout_session",
    "get_checkout_session",
    "checkout_plan_terms",
    "checkout_user_email",
    "link_stripe_session",
    "get_latest_checkout_session",
    "set_checkout_session_status",
    "take_stripe_session_quota",
    "checkout_session_for_stripe_session",
    "checkout_stripe_session_ids",
    "record_webhook_event",
    "fail_webhook_event",
    "log_error",
}
# What the jobs call: exactly what the jobs role may EXECUTE.
JOBS_FUNCTIONS = {
    "expire_old_checkout_sessions",
    "archive_completed_checkout_sessions",
    "checkout_reminder_candidates",
    "queue_checkout_reminders",
    "claim_due_email",
    "record_email_attempt",
    "start_job_run",
    "finish_job_run",
    "record_skipped_job_run",
    "job_run_history",
    "count_overdue_checkout_sessions",
    "count_archivable_checkout_sessions",
    "count_due_emails",
    "fold_checkout_session_rollup",
    "count_checkout_session_rollup_deltas",
    "log_error",
}


@pytest.fixture
def login_role(pg_admin_url: str, db_url: str) -> Iterator[Callable[[str], str]]:
    """Factory: login_role(group) -> URL of the test database as a new LOGIN role that is a member of
    `group` (and nothing else). The roles are dropped after the test (their connections first)."""
    created: list[str] = []

    def make(group: str) -> str:
        name = f"t_login_{uuid.uuid4().hex[:12]}"
        password = uuid.uuid4().hex
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group}")
        created.append(name)
        return make_conninfo(db_url, user=name, password=password)

    yield make
    dbname = conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        for name in created:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
            )
        for name in created:
            with psycopg.connect(make_conninfo(pg_admin_url, dbname=dbname), autocommit=True) as db:
                db.execute(f"DROP OWNED BY {name}")
            admin.execute(f"DROP ROLE {name}")


@pytest.fixture
def app_url(login_role, project) -> str:
    return login_role(project.settings["app_role"])


@pytest.fixture
def jobs_url(login_role, project) -> str:
    return login_role(project.settings["jobs_role"])


@pytest.fixture
def reporting_url(login_role, project) -> str:
    return login_role(project.settings["reporting_role"])


def project_tables(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
    ]


def project_functions(conn: psycopg.Connection) -> list[tuple[str, str, bool, list | None]]:
    """(name, signature, security definer, proconfig) of every function of the schema."""
    return conn.execute(
        "SELECT p.proname, p.oid::regprocedure::text, p.prosecdef, p.proconfig FROM pg_proc p "
        "WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' ORDER BY 2"
    ).fetchall()


# -- the application role works ---------------------------------------------------------------------------
def test_the_service_runs_as_the_application_role(settings, app_url, conn, make_user, fake_stripe):
    app = create_app(settings.with_(database_url=app_url))
    try:
        client = app.test_client()
        with psycopg.connect(app_url) as probe:  # it is the app role talking, not the owner
            assert probe.execute(
                "SELECT current_user, pg_has_role('checkout_app', 'MEMBER'), "
                "has_table_privilege('payment_checkout_sessions', 'SELECT')"
            ).fetchone()[1:] == (True, False)
        user = make_user("least@example.com")
        headers = bearer(user_token(user))

        created = client.post(CREATE, json={"plan": "pro"}, headers=headers)
        assert created.status_code == 200, created.json
        resumed = client.post(CREATE, json={"plan": "pro"}, headers=headers)
        assert resumed.json["resumed"] is True and resumed.json["url"] == created.json["url"]
        session_id = created.json["checkoutSessionId"]
        got = client.get(SESSION, query_string={"sessionId": session_id}, headers=headers)
        assert got.status_code == 200 and got.json["session"]["status"] == "pending"
        assert client.get(SESSION, headers=headers).json["session"]["id"] == session_id
        assert client.post(SESSION, json={"plan": "basic"}, headers=headers).status_code == 200
        basic = client.get(SESSION, headers=headers).json["session"]
        canceled = client.patch(
            SESSION, json={"sessionId": basic["id"], "status": "canceled"}, headers=headers
        )
        assert canceled.status_code == 200 and canceled.json["session"]["status"] == "canceled"

        # Stripe confirms the payment: the webhook completes the session as the app role.
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        row = cur.execute("SELECT * FROM payment_checkout_sessions WHERE id = %s", (session_id,)).fetchone()
        body = checkout_event("completed", row)
        delivered = client.post(WEBHOOK, data=body, headers=sign(body))
        assert delivered.status_code == 200 and delivered.json["outcome"] == "completed"
        again = client.post(WEBHOOK, data=body, headers=sign(body))
        assert again.json["duplicate"] is True
        # A mismatching event is rejected and logged (error_logs written by the definer function).
        forged = checkout_event("completed", {**row, "id": uuid.uuid4()}, stripe_session_id="cs_test_forged")
        assert client.post(WEBHOOK, data=forged, headers=sign(forged)).json["status"] == "rejected"
        # A Stripe failure is logged through log_error (error_log.record never raises, so check the row).
        other = make_user()
        fake_stripe.fail_with = 500
        assert client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(other))).status_code == 502
    finally:
        app.extensions["runner"].close()

    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE id = %s", (session_id,)).fetchone()[
            0
        ]
        == "completed"
    )
    assert (
        conn.execute("SELECT subscription_status FROM users WHERE id = %s", (user,)).fetchone()[0] == "active"
    )
    assert conn.execute("SELECT status, deliveries FROM webhook_events ORDER BY id").fetchall() == [
        ("processed", 2),
        ("rejected", 1),
    ]
    assert conn.execute("SELECT kind FROM email_outbox").fetchall() == [("verification",)]
    assert conn.execute("SELECT category, count(*) FROM error_logs GROUP BY 1 ORDER BY 1").fetchall() == [
        ("stripe", 1),
        ("webhook", 1),
    ]
    # Replaying a stored event is the owner's (`runner webhook replay`), not the service's.
    with psycopg.connect(app_url, autocommit=True) as app_conn, pytest.raises(errors.InsufficientPrivilege):
        webhook.replay(app_conn, json.loads(body)["id"], False)
    assert webhook.replay(conn, json.loads(body)["id"], False).outcome == "already completed"


def test_the_jobs_run_as_the_jobs_role(jobs_url, conn, project):
    def connect():
        return psycopg.connect(jobs_url, autocommit=True)

    overdue = add_sessions(conn, 3, created="now() - interval '2 days'", expires="now() - interval '1 day'")
    add_sessions(
        conn,
        2,
        created="now() - interval '200 days'",
        status="completed",
        completed="now() - interval '199 days'",
    )
    add_sessions(conn, 1, created="now() - interval '7 hours'")
    with connect() as app_conn:
        assert jobs.count_overdue(app_conn) == 3
        assert jobs.count_archivable(app_conn, 90) == 2
        assert len(jobs.reminder_candidates(app_conn)) == 1
        assert jobs.count_due_email(app_conn) == 0

    assert jobs.run(connect, "expire").rows == 3
    assert jobs.run(connect, "cleanup", retention_days=90).rows == 2
    with SmtpServer() as smtp:
        reminded = jobs.run(connect, "remind", project=project, mail=config(smtp.url))
        sent = jobs.run(connect, "send-email", project=project, mail=config(smtp.url))
        assert len(smtp.inbox.messages) == 1
    assert (reminded.details["queued"], reminded.details["sent"], sent.rows) == (1, 1, 0)

    # A second copy while one holds the lock is skipped and recorded, as the jobs role too.
    from runner.locks import LOCK_CLASS

    with connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, jobs.JOBS["expire"].lock_key))
        assert jobs.run(connect, "expire").outcome == "skipped"
    with connect() as app_conn:
        history = jobs.history(app_conn, limit=10)
    assert [(r["job"], r["outcome"]) for r in history] == [
        ("expire", "skipped"),
        ("send-email", "succeeded"),
        ("remind", "succeeded"),
        ("cleanup", "succeeded"),
        ("expire", "succeeded"),
    ]
    assert (
        conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE id = ANY(%s) AND status = 'expired'",
            (overdue,),
        ).fetchone()[0]
        == 3
    )
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions_archive").fetchone()[0] == 2


def test_a_users_token_never_reaches_another_users_data_as_the_application_role(
    settings, app_url, conn, make_user, fake_stripe
):
    """Every route and parameter combination of the API, with Bob's token naming Alice's session or id
    (test_api.py covers the same as the owner; here the service runs as the application role)."""
    from tests.payments_support import new_session

    app = create_app(settings.with_(database_url=app_url))
    try:
        client = app.test_client()
        alice, bob = make_user(), make_user()
        alices = new_session(conn, alice)
        headers = bearer(user_token(bob))
        attempts = [
            client.get(SESSION, query_string={"sessionId": str(alices["id"])}, headers=headers),
            client.get(SESSION, query_string={"userId": str(alice)}, headers=headers),
            client.get(
                SESSION, query_string={"sessionId": str(alices["id"]), "userId": str(bob)}, headers=headers
            ),
            client.get(
                SESSION, query_string={"sessionId": str(alices["id"]), "userId": str(alice)}, headers=headers
            ),
            client.post(SESSION, json={"plan": "basic", "userId": str(alice)}, headers=headers),
            client.post(CREATE, json={"plan": "pro", "userId": str(alice)}, headers=headers),
            client.patch(
                SESSION, json={"sessionId": str(alices["id"]), "status": "canceled"}, headers=headers
            ),
            client.patch(
                SESSION,
                json={"sessionId": str(alices["id"]), "status": "canceled", "userId": str(alice)},
                headers=headers,
            ),
        ]
        assert [r.status_code for r in attempts] == [404] * len(attempts)
        for response in attempts:  # the same answer as for a session that does not exist: nothing of Alice's
            assert response.json["error"]["code"] == "not_found"
            assert alices["email"] not in response.get_data(as_text=True)
            assert alices["stripe_session_id"] not in response.get_data(as_text=True)
        assert fake_stripe.requests == []
    finally:
        app.extensions["runner"].close()
    assert conn.execute("SELECT count(*), min(status) FROM payment_checkout_sessions").fetchone() == (
        1,
        "pending",
    )


# -- ... and can do nothing else ------------------------------------------------------------------------------
def test_the_application_role_cannot_read_or_write_any_table(app_url, conn, make_user):
    make_user()
    tables = project_tables(conn)
    assert {
        "payment_checkout_sessions",
        "users",
        "webhook_events",
        "error_logs",
        "job_runs",
        "email_outbox",
        "runner_schema_history",
    } <= set(tables)
    statements = [
        "SELECT * FROM {t} LIMIT 1",
        "INSERT INTO {t} DEFAULT VALUES",
        "UPDATE {t} SET {c} = {c}",
        "DELETE FROM {t}",
        "TRUNCATE {t}",
    ]
    refused = 0
    with psycopg.connect(app_url, autocommit=True) as app_conn:
        for table in tables:
            column = conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attidentity = '' AND attgenerated = '' ORDER BY attnum",
                (table,),
            ).fetchone()[0]
            for statement in statements:
                with pytest.raises(errors.InsufficientPrivilege):
                    app_conn.execute(statement.format(t=table, c=column))
                refused += 1
        with pytest.raises(errors.InsufficientPrivilege):
            app_conn.execute("CREATE TABLE public.sneaky (id int)")
    assert refused == len(tables) * len(statements)


def test_the_jobs_role_may_execute_exactly_the_functions_the_jobs_call(jobs_url, conn):
    with psycopg.connect(jobs_url, autocommit=True) as jobs_conn:
        allowed = {
            name
            for name, signature, *_ in project_functions(conn)
            if jobs_conn.execute("SELECT has_function_privilege(%s, 'EXECUTE')", (signature,)).fetchone()[0]
        }
    assert allowed == JOBS_FUNCTIONS


def test_the_application_role_may_execute_exactly_the_functions_it_needs(app_url, conn, make_user):
    functions = project_functions(conn)
    with psycopg.connect(app_url, autocommit=True) as app_conn:
        allowed = {
            name
            for name, signature, *_ in functions
            if app_conn.execute("SELECT has_function_privilege(%s, 'EXECUTE')", (signature,)).fetchone()[0]
        }
        assert allowed == APP_FUNCTIONS
        # The reference's completion, which skips the webhook's amount checks, is the owner's only.
        user = make_user()
        for call, args in (
            ("SELECT complete_checkout_session(%s, 'cs_test_x')", (uuid.uuid4(),)),
            ("SELECT rebuild_checkout_session_rollup()", ()),
            ("SELECT enqueue_email('verification', 'a@example.com', 'k')", ()),
            ("SELECT stripe_amount_minor_units(1, 'usd')", ()),
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                app_conn.execute(call, args)
        assert (
            app_conn.execute("SELECT checkout_user_email(%s)", (user,)).fetchone()[0].endswith("@example.com")
        )


def test_what_the_application_role_calls_runs_as_the_owner_with_a_pinned_search_path(conn):
    rows = {name: (definer, config) for name, _, definer, config in project_functions(conn)}
    for name in APP_FUNCTIONS | JOBS_FUNCTIONS:
        definer, config = rows[name]
        assert definer, f"{name} is not SECURITY DEFINER"
    for name, (definer, config) in rows.items():
        if definer:
            assert "search_path=public, pg_temp" in (config or []), name


def test_public_has_nothing(conn):
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, p.proacl IS NULL OR EXISTS ("
        "  SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) "
        "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
    ).fetchall()
    assert len(rows) >= 30
    assert [signature for signature, public in rows if public] == []
    assert (
        conn.execute(
            "SELECT has_schema_privilege('public', 'public', 'USAGE') OR "
            "has_schema_privilege('public', 'public', 'CREATE')"
        ).fetchone()[0]
        is False
    )
    granted = conn.execute(
        "SELECT c.relname FROM pg_class c, aclexplode(c.relacl) a "
        "WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 0"
    ).fetchall()
    assert granted == []
    # Functions created later start without PUBLIC's EXECUTE too (default privileges of the owner).
    conn.execute("CREATE FUNCTION later_function() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    assert (
        conn.execute("SELECT has_function_privilege('public', 'later_function()', 'EXECUTE')").fetchone()[0]
        is False
    )


# -- the reporting role reads ----------------------------------------------------------------------------------
def test_the_reporting_role_runs_every_report_and_metrics_but_cannot_write(reporting_url, conn, project):
    add_sessions(conn, 4, created="now() - interval '3 hours'")
    add_sessions(conn, 2, created="now() - interval '2 hours'", status="completed", completed="now()")
    names = [r.name for r in reports.available(project)]
    assert len(names) >= 10
    with psycopg.connect(reporting_url, autocommit=True) as rep:
        for name in names:
            reports.run(rep, project, name)
        body, _ = metrics.render(rep, project)
        assert b'checkout_sessions{plan="pro",status="pending"} 4.0' in body
        for statement in (
            "INSERT INTO error_logs (category, message) VALUES ('x', 'y')",
            "UPDATE payment_checkout_sessions SET attempts = attempts + 1",
            "DELETE FROM webhook_events",
            "SELECT * FROM users",
            "SELECT * FROM email_outbox",
            "SELECT expire_old_checkout_sessions()",
            "SELECT log_error('x', 'y')",
            "SELECT rebuild_checkout_session_rollup()",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                rep.execute(statement)
    assert (
        conn.execute("SELECT count(*) FROM payment_checkout_sessions WHERE status = 'pending'").fetchone()[0]
        == 4
    )


# -- apply maintains the roles ------------------------------------------------------------------------------
def copy_with_roles(folder: Path, suffix: str) -> None:
    """Copy the project to `folder`, its three roles renamed t_app_<suffix>, t_job_<suffix>, t_rep_<suffix>."""
    shutil.copytree(SQL_DIR, folder / "sql")
    config_file = folder / "sql" / "project.toml"
    config_file.write_text(
        config_file.read_text()
        .replace('app_role = "checkout_app"', f'app_role = "t_app_{suffix}"')
        .replace('jobs_role = "checkout_jobs"', f'jobs_role = "t_job_{suffix}"')
        .replace('reporting_role = "checkout_reporting"', f'reporting_role = "t_rep_{suffix}"')
    )


@pytest.fixture
def owner_without_createrole(pg_admin_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(URL of a new database owned by a LOGIN role without CREATEROLE, a copy of the project using new role
    names, the suffix of those names). Everything is dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    owner, dbname = f"t_owner_{suffix}", f"t_priv_{suffix}"
    copy_with_roles(tmp_path, suffix)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {owner} LOGIN PASSWORD 'owner-{suffix}'")
        admin.execute(f"CREATE DATABASE {dbname} OWNER {owner} TEMPLATE template0")
    try:
        yield (
            make_conninfo(pg_admin_url, dbname=dbname, user=owner, password=f"owner-{suffix}"),
            tmp_path,
            suffix,
        )
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            for role in (f"t_app_{suffix}", f"t_job_{suffix}", f"t_rep_{suffix}", owner):
                admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_apply_without_createrole_names_the_setting_then_works_with_roles_made_by_a_dba(
    owner_without_createrole, pg_admin_url
):
    url, folder, suffix = owner_without_createrole

    def connect():
        return psycopg.connect(url, autocommit=True)

    with pytest.raises(MigrationError) as refused:
        migrate.apply(connect, project_mod.load(folder))
    message = str(refused.value)
    assert message.startswith("sql/functions/privileges.sql")
    assert f"role t_app_{suffix} does not exist and t_owner_{suffix} may not create roles" in message
    assert "set manage_roles = false in sql/project.toml" in message

    config_file = folder / "sql" / "project.toml"
    config_file.write_text(config_file.read_text().replace("manage_roles = true", "manage_roles = false"))
    with pytest.raises(MigrationError) as missing:
        migrate.apply(connect, project_mod.load(folder))
    assert "does not exist and manage_roles = false" in str(missing.value)
    assert f"CREATE ROLE t_app_{suffix} NOLOGIN" in str(missing.value)

    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE t_app_{suffix} NOLOGIN")
        admin.execute(f"CREATE ROLE t_job_{suffix} NOLOGIN")
        admin.execute(f"CREATE ROLE t_rep_{suffix} NOLOGIN")
    result = migrate.apply(connect, project_mod.load(folder))
    # supabase_access.sql, the other `finally` file, follows privileges.sql (comments only on plain PostgreSQL).
    assert [s.name for s in result.steps] == ["functions/privileges.sql", "functions/supabase_access.sql"]
    with connect() as owner:
        assert (
            owner.execute(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind = 'r' AND relowner <> current_user::regrole"
            ).fetchone()[0]
            == 0
        )
        assert owner.execute(
            f"SELECT has_function_privilege('t_app_{suffix}', "
            "'get_or_create_checkout_session(uuid,text,text,numeric,text,jsonb)', 'EXECUTE'), "
            f"has_table_privilege('t_app_{suffix}', 'users', 'SELECT'), "
            f"has_table_privilege('t_rep_{suffix}', 'job_runs', 'SELECT')"
        ).fetchone() == (True, False, True)
        assert all(s.state == "applied" for s in migrate.status(owner, project_mod.load(folder)))


def test_privileges_come_back_after_a_function_is_dropped_and_created_again(empty_db_url, tmp_path):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    migrate.apply(lambda: psycopg.connect(empty_db_url, autocommit=True), project_mod.load(tmp_path))
    fn = tmp_path / "sql" / "functions" / "log_error.sql"
    fn.write_text(
        fn.read_text().replace(
            'CREATE OR REPLACE FUNCTION {{ m.q("log_error") }}(',
            'DROP FUNCTION IF EXISTS {{ m.q("log_error") }}(TEXT, TEXT, JSONB);\n'
            'CREATE FUNCTION {{ m.q("log_error") }}(',
        )
    )
    result = migrate.apply(lambda: psycopg.connect(empty_db_url, autocommit=True), project_mod.load(tmp_path))
    assert [(s.name, s.action) for s in result.steps] == [
        ("functions/log_error.sql", "reapply"),
        ("functions/privileges.sql", "reapply"),
        ("functions/supabase_access.sql", "reapply"),
    ]
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute(
            "SELECT has_function_privilege('checkout_app', 'log_error(text,text,jsonb)', 'EXECUTE'),"
            " has_function_privilege('public', 'log_error(text,text,jsonb)', 'EXECUTE')"
        ).fetchone() == (True, False)
        # Killed between the two files: the privileges are behind the function, so the next apply runs them.
        conn.execute(
            "DELETE FROM runner_schema_history WHERE id IN "
            "(SELECT id FROM runner_schema_history ORDER BY id DESC LIMIT 2)"
        )
        conn.commit()
    again = migrate.apply(lambda: psycopg.connect(empty_db_url, autocommit=True), project_mod.load(tmp_path))
    assert [(s.name, s.action) for s in again.steps] == [
        ("functions/privileges.sql", "reapply"),
        ("functions/supabase_access.sql", "reapply"),
    ]
    assert (
        migrate.apply(
            lambda: psycopg.connect(empty_db_url, autocommit=True), project_mod.load(tmp_path)
        ).steps
        == []
    )


def test_concurrent_applies_in_databases_of_one_server_create_the_roles_once(
    make_database, project, pg_admin_url, tmp_path
):
    import threading

    suffix = uuid.uuid4().hex[:10]
    copy_with_roles(tmp_path, suffix)
    copy = project_mod.load(tmp_path)
    urls = [make_database() for _ in range(4)]
    failures: list[BaseException] = []

    def run(url: str) -> None:
        try:
            migrate.apply(lambda: psycopg.connect(url, autocommit=True), copy, lock_timeout=120)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(u,)) for u in urls]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert failures == []
        for url in urls:
            with psycopg.connect(url) as conn:
                assert (
                    conn.execute(
                        "SELECT has_table_privilege(%s, 'job_runs', 'SELECT')", (f"t_rep_{suffix}",)
                    ).fetchone()[0]
                    is True
                )
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            for url in urls:
                admin.execute(f'DROP DATABASE IF EXISTS "{conninfo_to_dict(url)["dbname"]}" WITH (FORCE)')
            for role in (f"t_app_{suffix}", f"t_job_{suffix}", f"t_rep_{suffix}"):
                admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_metrics_as_the_application_role_alone_names_the_missing_grant(settings, app_url):
    app = create_app(settings.with_(database_url=app_url))
    try:
        response = app.test_client().get("/metrics")
    finally:
        app.extensions["runner"].close()
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_privileges"
    assert "reporting role" in response.json["error"]["message"]


# -- a stolen credential cannot pay ------------------------------------------------------------------------------
FORGERS = ("app_role", "jobs_role", "reporting_role")


@pytest.mark.parametrize("group", FORGERS)
def test_a_stolen_credential_of_any_role_cannot_complete_a_session(
    login_role, project, conn, make_user, group
):
    """Connected as a member of each role, every call that could record or apply a made-up
    checkout.session.completed refuses it: without Stripe's signature (no header, a header signed with
    another secret, a stale or future one, another body's) no row changes, no user is activated."""
    from tests.payments_support import new_session, store_webhook_secrets

    store_webhook_secrets(conn.info.dsn)
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    url = login_role(project.settings.get(group, "checkout_jobs"))
    now = int(time.time())
    headers = [
        None,
        "",
        "t=1",
        f"t={now}",
        f"t={now},v1=" + "0" * 64,
        sign(body, secret="whsec_attacker")["Stripe-Signature"],  # the attacker's own secret
        sign(body, timestamp=now - 3600)["Stripe-Signature"],  # a real signature, stale
        sign(body, timestamp=now + 3600)["Stripe-Signature"],  # ... or minted for the future
        sign(body.replace('"paid"', '"paid" '))["Stripe-Signature"],  # a real signature of another body
    ]
    with psycopg.connect(url, autocommit=True) as forger:
        for header in headers:
            with pytest.raises((errors.InvalidAuthorizationSpecification, errors.InsufficientPrivilege)):
                forger.execute("SELECT * FROM record_webhook_event(%s, %s, false, 300)", (body, header))
            with pytest.raises((errors.InvalidAuthorizationSpecification, errors.InsufficientPrivilege)):
                forger.execute("SELECT fail_webhook_event(%s, %s, 'x', 300)", (body, header))
        # A tolerance of its own choosing does not make the attacker's secret Stripe's.
        with pytest.raises((errors.InvalidAuthorizationSpecification, errors.InsufficientPrivilege)):
            forger.execute(
                "SELECT * FROM record_webhook_event(%s, %s, false, 2147483647)",
                (body, sign(body, secret="whsec_attacker")["Stripe-Signature"]),
            )
        for call, args in (
            ("SELECT * FROM process_webhook_event(%s, false)", (json.loads(body)["id"],)),
            (
                "SELECT * FROM apply_webhook_event('evt_x', 'checkout.session.completed', %s::jsonb, false)",
                (body,),
            ),
            ("SELECT complete_checkout_session(%s, 'cs_test_x')", (row["id"],)),
            ("SELECT * FROM set_webhook_secret('whsec_attacker')", ()),
            ("SELECT remove_webhook_secret('whsec_test_current')", ()),
            ("SELECT * FROM webhook_secrets", ()),
            (
                (
                    "INSERT INTO webhook_secrets (fingerprint, hint, inner_key, outer_key) "
                    "SELECT 'x', 'x', inner_key, outer_key FROM webhook_hmac_keys('whsec_attacker')"
                ),
                (),
            ),
            ("SELECT stripe_signature_problem(%s, %s, 300)", (body, f"t={now},v1=00")),
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                forger.execute(call, args)
    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE id = %s", (row["id"],)).fetchone()[0]
        == "pending"
    )
    assert conn.execute("SELECT count(*) FROM users WHERE subscription_status = 'active'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM webhook_secrets").fetchone()[0] == 2
    # The same event, signed by Stripe's secret, completes it as the service's role: the check is no wall.
    with psycopg.connect(login_role(project.settings["app_role"]), autocommit=True) as service:
        assert service.execute(
            "SELECT status, outcome FROM record_webhook_event(%s, %s, false, 300)",
            (body, sign(body)["Stripe-Signature"]),
        ).fetchone() == ("processed", "completed")
