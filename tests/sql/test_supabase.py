"""platform = "supabase": the project applied by Supabase's non-superuser `postgres` to a Supabase-shaped
database (tests/supabase_support.py), each rule proved by acting as each role the way PostgREST does."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from runner import migrate
from runner import project as project_mod
from runner.errors import ConfigError, MigrationError
from tests import supabase_support as sb


@pytest.fixture(scope="module")
def supa(make_database, pg_admin_url, project):
    """(admin url, database name, owner role, project): a Supabase-shaped database with the project applied."""
    dbname, owner = sb.make_supabase_database(make_database, pg_admin_url)
    supabase = sb.supabase_project(project)
    sb.apply(pg_admin_url, dbname, supabase, owner)
    return pg_admin_url, dbname, owner, supabase


def admin(supa) -> psycopg.Connection:
    url, dbname, _, _ = supa
    return psycopg.connect(make_conninfo(url, dbname=dbname), autocommit=True)


def start_checkout(supa, user_id: uuid.UUID, plan: str = "basic") -> uuid.UUID:
    """The reference's create-checkout route: the RPC with the service-role key, committed."""
    url, dbname, _, _ = supa
    with sb.as_role(url, dbname, "service_role") as conn:
        session_id = sb.reference_checkout(conn, user_id, plan=plan)
        conn.commit()
    return session_id


def project_tables(conn: psycopg.Connection, schema: str = "public") -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind IN ('r', 'p') "
            "ORDER BY relname",
            (schema,),
        )
    ]


# -- the apply ------------------------------------------------------------------------------------------
def test_applied_by_a_postgres_that_is_not_superuser(supa):
    url, dbname, owner, supabase = supa
    with admin(supa) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (owner,)).fetchone() == (
            False,
        )
        owners = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT relowner::regrole::text FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            )
        }
    assert owners == {owner}
    # A second apply has nothing to do (the supabase file is recorded like every other).
    with psycopg.connect(make_conninfo(url, dbname=dbname, user=owner), autocommit=True) as conn:
        assert migrate.plan(conn, supabase) == []


def test_running_the_file_again_changes_nothing_and_recreates_no_policy(supa):
    """The file runs after every apply that applied something: then it must not take the tables' ACCESS
    EXCLUSIVE lock again (policies are recreated only when their definition changed)."""
    url, dbname, owner, supabase = supa
    query = "SELECT polrelid::regclass::text, polname, oid FROM pg_policy ORDER BY 1, 2"
    with admin(supa) as conn:
        before = conn.execute(query).fetchall()
    assert ("payment_checkout_sessions", "checkout_sessions_select_own") in [r[:2] for r in before]
    with psycopg.connect(make_conninfo(url, dbname=dbname, user=owner)) as conn:
        conn.execute(supabase.render("functions/supabase_access.sql"))
        locked = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND "
            "mode = 'AccessExclusiveLock' AND relation = 'public.payment_checkout_sessions'::regclass"
        ).fetchone()
        conn.commit()
    assert locked == (0,)
    with admin(supa) as conn:
        assert conn.execute(query).fetchall() == before


def test_every_project_table_has_rls_and_no_api_role_privilege(supa):
    with admin(supa) as conn:
        tables = project_tables(conn)
        assert {
            "payment_checkout_sessions",
            "users",
            "job_runs",
            "webhook_events",
            "error_logs",
            "email_outbox",
            "runner_schema_history",
        } <= set(tables)
        without_rls = [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') "
                "AND NOT relrowsecurity"
            )
        ]
        assert without_rls == []
        granted = conn.execute(
            """SELECT grantee, table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)
                 FROM information_schema.role_table_grants
                WHERE table_schema = 'public' AND grantee IN ('anon', 'authenticated', 'service_role')
                GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        assert granted == [
            ("authenticated", "payment_checkout_sessions", "SELECT"),
            ("authenticated", "users", "SELECT"),
            ("service_role", "payment_checkout_sessions", "SELECT"),
            ("service_role", "users", "SELECT"),
        ]
        column_updates = conn.execute(
            """SELECT grantee, table_name, column_name FROM information_schema.column_privileges
                WHERE table_schema = 'public' AND privilege_type = 'UPDATE'
                  AND grantee IN ('anon', 'authenticated', 'service_role')"""
        ).fetchall()
        assert column_updates == [("service_role", "payment_checkout_sessions", "stripe_session_id")]
        executable = conn.execute(
            """SELECT r.rolname, p.proname FROM pg_proc p CROSS JOIN pg_roles r
                WHERE p.pronamespace = 'public'::regnamespace
                  AND r.rolname IN ('anon', 'authenticated', 'service_role')
                  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
                ORDER BY 1, 2"""
        ).fetchall()
        assert executable == [
            ("service_role", f)
            for f in (
                "complete_checkout_session",
                "expire_old_checkout_sessions",
                "get_latest_checkout_session",
                "get_or_create_checkout_session",
                "set_checkout_session_status",
            )
        ]


def test_runner_apply_from_the_command_line(make_database, pg_admin_url, tmp_path):
    """What a DBA runs: the project with platform = "supabase", `runner apply` as Supabase's postgres."""
    import shutil

    from click.testing import CliRunner

    from runner.cli import cli
    from tests.conftest import SQL_DIR

    shutil.copytree(SQL_DIR, tmp_path / "sql")
    toml = tmp_path / "sql" / "project.toml"
    toml.write_text(re.sub(r'(?m)^platform = "postgres"$', 'platform = "supabase"', toml.read_text()))
    dbname, owner = sb.make_supabase_database(make_database, pg_admin_url)
    url = make_conninfo(pg_admin_url, dbname=dbname, user=owner)

    def run(*args: str):
        return CliRunner().invoke(
            cli,
            ["--database-url", url, "--project-dir", str(tmp_path), *args],
            env={"DATABASE_URL": None},
            catch_exceptions=False,
        )

    applied = run("apply")
    assert applied.exit_code == 0, applied.output
    assert "apply    sql/functions/supabase_access.sql" in applied.output
    assert run("apply", "--check").exit_code == 0
    with psycopg.connect(make_conninfo(pg_admin_url, dbname=dbname), autocommit=True) as conn:
        assert conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.payment_checkout_sessions'::regclass"
        ).fetchone() == (True,)


# -- users are auth users ------------------------------------------------------------------------------
def test_sign_up_creates_the_users_row_and_delete_cascades(supa):
    url, dbname, _, _ = supa
    user_id = sb.sign_up(url, dbname, "new.user@example.com")
    with admin(supa) as conn:
        assert conn.execute("SELECT email FROM users WHERE id = %s", (user_id,)).fetchone() == (
            "new.user@example.com",
        )
    start_checkout(supa, user_id)
    with psycopg.connect(
        make_conninfo(url, dbname=dbname, user="supabase_auth_admin"), autocommit=True
    ) as auth:
        auth.execute("UPDATE auth.users SET email = 'renamed@example.com' WHERE id = %s", (user_id,))
        with admin(supa) as conn:
            assert conn.execute("SELECT email FROM users WHERE id = %s", (user_id,)).fetchone() == (
                "renamed@example.com",
            )
        auth.execute("DELETE FROM auth.users WHERE id = %s", (user_id,))
    with admin(supa) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE id = %s", (user_id,)).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE user_id = %s", (user_id,)
        ).fetchone() == (0,)
        fk = conn.execute(
            """SELECT confrelid::regclass::text, confdeltype FROM pg_constraint
                WHERE conrelid = 'public.users'::regclass AND contype = 'f'
                  AND confrelid = 'auth.users'::regclass"""
        ).fetchall()
    assert fk == [("auth.users", "c")]


def test_a_users_row_without_an_auth_user_is_refused(supa):
    with admin(supa) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO users (email) VALUES ('nobody@example.com')")


def test_an_app_trigger_inserting_the_users_row_first_still_works(supa):
    """Supabase's documented pattern (on_auth_user_created, a plain INSERT) beside ours: sign-up succeeds."""
    url, dbname, owner, _ = supa
    with admin(supa) as conn:
        conn.execute(f'SET ROLE "{owner}"')
        conn.execute("""CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql
                        SECURITY DEFINER SET search_path = public AS $$
                        BEGIN INSERT INTO public.users (id, email) VALUES (NEW.id, NEW.email); RETURN NEW; END $$""")
        conn.execute(
            "CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users "
            "FOR EACH ROW EXECUTE FUNCTION public.handle_new_user()"
        )
        try:
            user_id = sb.sign_up(url, dbname, "twice@example.com")
            assert conn.execute("SELECT email FROM users WHERE id = %s", (user_id,)).fetchone() == (
                "twice@example.com",
            )
        finally:
            conn.execute("RESET ROLE")
            conn.execute("DROP TRIGGER on_auth_user_created ON auth.users")
            conn.execute("DROP FUNCTION public.handle_new_user()")


# -- anon ----------------------------------------------------------------------------------------------
def test_anon_reads_nothing_and_calls_nothing(supa):
    url, dbname, _, _ = supa
    user_id = sb.sign_up(url, dbname)
    start_checkout(supa, user_id)
    with admin(supa) as conn:
        tables = project_tables(conn)
    with admin(supa) as conn:
        views = [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('v', 'm')"
            )
        ]
    assert "checkout_session_rollup_current" in views
    for table in tables + views:
        with sb.as_role(url, dbname, "anon") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SELECT * FROM public."{table}" LIMIT 1')
    for function, arguments in (
        (
            "get_or_create_checkout_session",
            {"p_user_id": user_id, "p_email": "a@example.com", "p_plan": "basic"},
        ),
        ("get_latest_checkout_session", {"p_user_id": user_id}),
        ("expire_old_checkout_sessions", {}),
    ):
        with sb.as_role(url, dbname, "anon") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            sb.rpc(conn, function, **arguments)


# -- authenticated -------------------------------------------------------------------------------------
def test_authenticated_reads_only_its_own_rows(supa):
    url, dbname, _, _ = supa
    me, other = sb.sign_up(url, dbname), sb.sign_up(url, dbname)
    mine, theirs = start_checkout(supa, me), start_checkout(supa, other)
    with sb.as_role(url, dbname, "authenticated", me) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM payment_checkout_sessions")] == [mine]
        assert conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE id = %s", (theirs,)
        ).fetchone() == (0,)
        assert [r[0] for r in conn.execute("SELECT id FROM users")] == [me]
    # No JWT subject: no rows, not every row.
    with sb.as_role(url, dbname, "authenticated") as conn:
        assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone() == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE payment_checkout_sessions SET status = 'canceled' WHERE user_id = %(me)s",
        "UPDATE payment_checkout_sessions SET stripe_session_id = 'cs_mine' WHERE user_id = %(me)s",
        "DELETE FROM payment_checkout_sessions WHERE user_id = %(me)s",
        (
            "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, payment_provider) "
            "VALUES (%(me)s, 'me@example.com', 'pro', 0.01, 'stripe')"
        ),
        "UPDATE users SET subscription_status = 'active' WHERE id = %(me)s",
        "SELECT * FROM webhook_events",
        "SELECT * FROM error_logs",
        "SELECT * FROM job_runs",
        "SELECT * FROM email_outbox",
        "SELECT * FROM checkout_session_rollup",
        "SELECT * FROM subscription_plans",
        "SELECT * FROM payment_checkout_sessions_archive",
        "SELECT * FROM runner_schema_history",
        "SELECT get_latest_checkout_session(p_user_id => %(me)s)",
        "SELECT get_or_create_checkout_session(p_user_id => %(me)s, p_email => 'me@example.com', p_plan => 'basic')",
        "SELECT complete_checkout_session(p_session_id => gen_random_uuid(), p_stripe_session_id => 'cs_x')",
    ],
)
def test_authenticated_writes_nothing_and_sees_no_other_table(supa, statement):
    url, dbname, _, _ = supa
    me = sb.sign_up(url, dbname)
    start_checkout(supa, me)
    with (
        sb.as_role(url, dbname, "authenticated", me) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement, {"me": me})


# -- service_role --------------------------------------------------------------------------------------
def test_service_role_makes_the_reference_calls(supa):
    """create-checkout: RPC, then the direct stripe_session_id update; webhook: complete_checkout_session."""
    url, dbname, _, _ = supa
    user_id = sb.sign_up(url, dbname)
    with sb.as_role(url, dbname, "service_role") as conn:
        session_id = sb.reference_checkout(conn, user_id)
        # The same call again resumes the one pending session.
        assert sb.reference_checkout(conn, user_id) == session_id
        updated = conn.execute(
            "UPDATE payment_checkout_sessions SET stripe_session_id = %s WHERE id = %s RETURNING id",
            ("cs_test_ref", session_id),
        ).fetchall()
        assert updated == [(session_id,)]
        assert (
            sb.rpc(
                conn,
                "complete_checkout_session",
                p_session_id=session_id,
                p_stripe_session_id="cs_test_ref",
                p_stripe_customer_id="cus_ref",
            )
            is True
        )
        latest = conn.execute(
            "SELECT status FROM get_latest_checkout_session(p_user_id => %s)", (user_id,)
        ).fetchone()
        assert latest == ("completed",)
        assert conn.execute(
            "SELECT subscription_status, subscription_plan FROM users WHERE id = %s", (user_id,)
        ).fetchone() == ("active", "pro")
        assert sb.rpc(conn, "expire_old_checkout_sessions") == 0
        # The PATCH route closes a pending session through the checked function, never by a direct UPDATE.
        other = sb.reference_checkout(conn, user_id, "basic")
        assert conn.execute(
            "SELECT status FROM set_checkout_session_status(p_session_id => %s, p_status => 'canceled')",
            (other,),
        ).fetchone() == ("canceled",)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute(
                "SELECT set_checkout_session_status(p_session_id => %s, p_status => 'completed')", (other,)
            )


@pytest.mark.parametrize(
    ("statement", "sqlstate"),
    [
        # A price not the catalogue's.
        (
            (
                "SELECT get_or_create_checkout_session(p_user_id => %(me)s, p_email => 'a@example.com', p_plan => 'basic', "
                "p_price => 0.50)"
            ),
            "22023",
        ),
        # Status moves only forward, and only the functions move it: no UPDATE of status for service_role.
        ("UPDATE payment_checkout_sessions SET status = 'pending' WHERE user_id = %(me)s", "42501"),
        ("UPDATE payment_checkout_sessions SET plan_price = 0.01 WHERE user_id = %(me)s", "42501"),
        (
            (
                "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, payment_provider) "
                "VALUES (%(me)s, 'a@example.com', 'pro', 0.01, 'stripe')"
            ),
            "42501",
        ),
        ("DELETE FROM payment_checkout_sessions WHERE user_id = %(me)s", "42501"),
        ("SELECT * FROM webhook_events", "42501"),
        ("SELECT log_error(p_category => 'x', p_message => 'y')", "42501"),
    ],
)
def test_service_role_cannot_bypass_the_invariants(supa, statement, sqlstate):
    url, dbname, _, _ = supa
    me = sb.sign_up(url, dbname)
    start_checkout(supa, me)
    with sb.as_role(url, dbname, "service_role") as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, {"me": me})
    assert caught.value.sqlstate == sqlstate


def test_completed_session_does_not_move_back_for_service_role(supa):
    url, dbname, _, _ = supa
    me = sb.sign_up(url, dbname)
    session_id = start_checkout(supa, me)
    with sb.as_role(url, dbname, "service_role") as conn:
        sb.rpc(conn, "complete_checkout_session", p_session_id=session_id, p_stripe_session_id="cs_done")
        conn.commit()
    with admin(supa) as conn, pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE id = %s", (session_id,))


def test_one_pending_per_user_and_plan_under_concurrent_service_role_calls(supa):
    from concurrent.futures import ThreadPoolExecutor

    url, dbname, _, _ = supa
    me = sb.sign_up(url, dbname)
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: start_checkout(supa, me, "enterprise"), range(8)))
    assert len(ids) == 1
    with admin(supa) as conn:
        assert conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE user_id = %s AND status = 'pending'", (me,)
        ).fetchone() == (1,)


# -- the project's own roles beside Supabase's ---------------------------------------------------------
def test_project_roles_keep_working(supa):
    url, dbname, _, supabase = supa
    me = sb.sign_up(url, dbname)
    start_checkout(supa, me)
    with admin(supa) as conn:
        conn.execute(f"SET ROLE {supabase.settings['reporting_role']}")
        assert conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE user_id = %s", (me,)
        ).fetchone() == (1,)
        conn.execute("RESET ROLE")
        conn.execute(f"SET ROLE {supabase.settings['app_role']}")
        assert conn.execute("SELECT status FROM get_latest_checkout_session(%s)", (me,)).fetchone() == (
            "pending",
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM payment_checkout_sessions")


# -- the setting ---------------------------------------------------------------------------------------
def test_plain_postgres_renders_no_statement(project):
    rendered = project.render("functions/supabase_access.sql")
    statements = [
        line for line in rendered.splitlines() if line.strip() and not line.lstrip().startswith("--")
    ]
    assert project.settings["platform"] == "postgres"
    assert statements == []


def test_supabase_on_a_database_without_supabase_is_one_clear_error(empty_db_url, project):
    with pytest.raises(
        MigrationError, match=r'platform is "supabase" but this database has no .*auth\.users'
    ):
        migrate.apply(lambda: psycopg.connect(empty_db_url, autocommit=True), sb.supabase_project(project))


def test_unknown_platform_is_a_config_error(tmp_path, project):
    import shutil

    copy = tmp_path / "sql"
    shutil.copytree(project.sql_dir, copy)
    toml = re.sub(r"(?m)^platform = .*\n", "", (copy / "project.toml").read_text())
    (copy / "project.toml").write_text(toml.replace("[settings]\n", '[settings]\nplatform = "mysql"\n', 1))
    with pytest.raises(
        ConfigError, match=r"settings\.platform must be one of 'postgres', 'supabase', got 'mysql'"
    ):
        project_mod.load(tmp_path)


# -- runner adopt on Supabase ----------------------------------------------------------------------------
def test_adopt_a_supabase_project_running_the_reference(make_database, pg_admin_url, project):
    """The reference's team on Supabase: its tables built by `postgres` (so its API roles got ALL on them),
    users.id referencing auth.users without a cascade, its own sign-up trigger. `runner adopt` as `postgres`
    keeps every row and call, and leaves the same access rules as a fresh apply."""
    from runner.adoption import execute as adoption
    from tests import reference_db

    dbname, owner = sb.make_supabase_database(make_database, pg_admin_url)
    owner_url = make_conninfo(pg_admin_url, dbname=dbname, user=owner)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        reference_db.build_schema(conn)
        conn.execute(
            "ALTER TABLE users ADD CONSTRAINT users_id_fkey FOREIGN KEY (id) REFERENCES auth.users (id)"
        )
        conn.execute("""CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql
                        SECURITY DEFINER SET search_path = public AS $$
                        BEGIN INSERT INTO public.users (id, email) VALUES (NEW.id, NEW.email); RETURN NEW; END $$""")
        conn.execute(
            "CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users "
            "FOR EACH ROW EXECUTE FUNCTION public.handle_new_user()"
        )
    users = [sb.sign_up(pg_admin_url, dbname) for _ in range(3)]
    before = []
    for user_id in users:
        with sb.as_role(pg_admin_url, dbname, "service_role") as conn:  # the reference's app, before
            before.append(sb.reference_checkout(conn, user_id, email="team@example.com"))
            conn.commit()

    supabase = sb.supabase_project(project)
    adoption.adopt(lambda: psycopg.connect(owner_url, autocommit=True), supabase)

    with psycopg.connect(make_conninfo(pg_admin_url, dbname=dbname), autocommit=True) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT id FROM payment_checkout_sessions")) == sorted(
            before
        )
        # Every project table has RLS; the team's own table (team-edits.sql) is left as the team made it.
        assert conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') AND NOT relrowsecurity"
        ).fetchall() == [("team_checkout_audit",)]
        assert conn.execute(
            "SELECT has_table_privilege('anon', 'team_checkout_audit', 'SELECT')"
        ).fetchone() == (True,)
        assert conn.execute("""SELECT confdeltype FROM pg_constraint WHERE conrelid = 'public.users'::regclass
                                AND confrelid = 'auth.users'::regclass""").fetchall() == [("c",)]
    with (
        sb.as_role(pg_admin_url, dbname, "anon") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM payment_checkout_sessions")
    with sb.as_role(pg_admin_url, dbname, "authenticated", users[0]) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM payment_checkout_sessions")] == [before[0]]
    # The app's calls keep working, and a new sign-up (both triggers) still gets its users row.
    newcomer = sb.sign_up(pg_admin_url, dbname)
    with sb.as_role(pg_admin_url, dbname, "service_role") as conn:
        for user_id in (users[1], newcomer):
            session_id = sb.reference_checkout(conn, user_id, email="team@example.com")
            conn.execute(
                "UPDATE payment_checkout_sessions SET stripe_session_id = %s WHERE id = %s",
                (f"cs_{user_id.hex}", session_id),
            )
            assert (
                sb.rpc(
                    conn,
                    "complete_checkout_session",
                    p_session_id=session_id,
                    p_stripe_session_id=f"cs_{user_id.hex}",
                    p_stripe_customer_id="cus_team",
                )
                is True
            )
        assert session_id not in before and before[1] in [
            r[0]
            for r in conn.execute("SELECT id FROM payment_checkout_sessions WHERE user_id = %s", (users[1],))
        ]


def test_runner_verify_passes_on_supabase(supa):
    """verify's smoke test signs a user up (users follow auth.users there) and rolls everything back."""
    from runner import verify

    url, dbname, owner, supabase = supa
    with psycopg.connect(make_conninfo(url, dbname=dbname, user=owner), autocommit=True) as conn:
        checks = verify.run(conn, supabase)
        assert conn.execute(
            "SELECT count(*) FROM auth.users WHERE email = 'verify@runner.invalid'"
        ).fetchone() == (0,)
    assert [c for c in checks if not c.ok] == []
