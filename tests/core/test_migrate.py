"""`runner apply` semantics: history, checksums, drift, repeatables, failures, the lock, concurrency."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from runner import migrate
from runner import project as project_mod
from runner.errors import ConfigError, DriftError, LockTimeout, MigrationError, ProjectError, TemplateError
from runner.locks import APPLY_LOCK, advisory_lock
from tests.conftest import SQL_DIR


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """An editable copy of the SQL project; returns the folder holding sql/."""
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    return tmp_path


def connector(url: str):
    return lambda: psycopg.connect(url, autocommit=True)


def history(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT name, checksum FROM runner_schema_history ORDER BY id").fetchall()


def test_apply_from_empty_then_noop(empty_db_url, project):
    first = migrate.apply(connector(empty_db_url), project)
    files = project.files()
    assert [s.name for s in first.steps] == [f.name for f in files]
    assert [name for name, _ in history(empty_db_url)] == [f.name for f in files]
    again = migrate.apply(connector(empty_db_url), project)
    assert again.steps == []
    assert len(history(empty_db_url)) == len(files)


def test_versioned_files_apply_in_version_order(project):
    versions = [f.version for f in project.versioned()]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_repeatables_follow_depends_directives(project):
    order = [f.description for f in project.repeatables()]
    for f in project.repeatables():
        for dep in f.depends:
            assert order.index(dep) < order.index(f.description)


def test_history_records_when_how_long_and_who(empty_db_url, project):
    migrate.apply(connector(empty_db_url), project)
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute(
            "SELECT kind, version, applied_at IS NOT NULL, duration_ms >= 0, applied_by = current_user, "
            "client LIKE '%@%', runner_version FROM runner_schema_history WHERE version = 3"
        ).fetchone()
    assert row[:6] == ("versioned", 3, True, True, True, True)


def test_drift_is_refused_before_anything_runs(empty_db_url, sql_copy):
    project = project_mod.load(sql_copy)
    migrate.apply(connector(empty_db_url), project)
    edited = sql_copy / "sql" / "tables" / "V005__error_logs.sql"
    edited.write_text(edited.read_text().replace("message    TEXT NOT NULL", "message    TEXT"))
    (sql_copy / "sql" / "tables" / "V090__later.sql").write_text("CREATE TABLE later_table (id int);\n")
    before = history(empty_db_url)
    with pytest.raises(DriftError) as info:
        migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    message = str(info.value)
    assert "sql/tables/V005__error_logs.sql was edited after it was applied" in message
    assert "runner baseline" in message and "new sql/tables/V<next>" in message
    assert history(empty_db_url) == before
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('later_table')").fetchone()[0] is None


def test_whitespace_and_comment_edits_are_not_drift(empty_db_url, sql_copy):
    migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    edited = sql_copy / "sql" / "tables" / "V005__error_logs.sql"
    edited.write_text("-- a reworded comment\n" + edited.read_text().replace("\n", "  \r\n") + "\n\n")
    assert migrate.apply(connector(empty_db_url), project_mod.load(sql_copy)).steps == []


def test_status_reports_drifted_changed_pending_missing(empty_db_url, sql_copy):
    migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    sql = sql_copy / "sql"
    (sql / "tables" / "V005__error_logs.sql").write_text("CREATE TABLE error_logs (id int);\n")
    fn = sql / "functions" / "get_latest_checkout_session.sql"
    fn.write_text(fn.read_text().replace("ORDER BY created_at DESC, id DESC", "ORDER BY created_at DESC"))
    (sql / "tables" / "V091__new.sql").write_text("SELECT 1;\n")
    (sql / "functions" / "enqueue_email.sql").unlink()
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        states = {s.name: s.state for s in migrate.status(conn, project_mod.load(sql_copy))}
    assert states["tables/V005__error_logs.sql"] == "drifted"
    assert states["functions/get_latest_checkout_session.sql"] == "changed"
    assert states["tables/V091__new.sql"] == "pending"
    assert states["functions/enqueue_email.sql"] == "missing"
    assert states["tables/V001__subscription_plans.sql"] == "applied"


def test_changed_function_is_reapplied(empty_db_url, sql_copy):
    migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    fn = sql_copy / "sql" / "functions" / "get_latest_checkout_session.sql"
    fn.write_text(
        fn.read_text().replace(
            "'The user''s most recent checkout session, or no row.'", "'Most recent session (edited).'"
        )
    )
    result = migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    # The privileges and the Supabase access rules (`-- runner: finally`) run again after any change.
    assert [(s.name, s.action) for s in result.steps] == [
        ("functions/get_latest_checkout_session.sql", "reapply"),
        ("functions/privileges.sql", "reapply"),
        ("functions/supabase_access.sql", "reapply"),
    ]
    with psycopg.connect(empty_db_url) as conn:
        comment = conn.execute(
            "SELECT obj_description('get_latest_checkout_session'::regproc, 'pg_proc')"
        ).fetchone()[0]
    assert comment == "Most recent session (edited)."


def test_config_change_reapplies_dependent_repeatable(empty_db_url, sql_copy):
    migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    config = sql_copy / "sql" / "project.toml"
    config.write_text(config.read_text().replace('price = "29.99"', 'price = "34.00"'))
    result = migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    assert [s.name for s in result.steps] == [
        "functions/plan_catalogue.sql",
        "functions/privileges.sql",
        "functions/supabase_access.sql",
    ]
    with psycopg.connect(empty_db_url) as conn:
        assert (
            str(conn.execute("SELECT price FROM subscription_plans WHERE code = 'pro'").fetchone()[0])
            == "34.00"
        )


def test_failing_file_leaves_nothing_and_names_file_and_line(empty_db_url, sql_copy):
    migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    (sql_copy / "sql" / "tables" / "V092__broken.sql").write_text(
        "CREATE TABLE half_done (id int);\n\nINSERT INTO half_done VALUES (1);\nSELECT no_such_column FROM half_done;\n"
    )
    before = history(empty_db_url)
    with pytest.raises(MigrationError) as info:
        migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    assert str(info.value).startswith('sql/tables/V092__broken.sql:4: column "no_such_column" does not exist')
    assert "SQLSTATE 42703" in str(info.value)
    assert history(empty_db_url) == before
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None


def test_no_transaction_directive_allows_concurrent_index(empty_db_url, sql_copy):
    (sql_copy / "sql" / "tables" / "V093__concurrent_index.sql").write_text(
        "-- runner: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_metadata\n"
        "  ON payment_checkout_sessions USING gin (metadata);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_currency ON payment_checkout_sessions (currency);\n"
    )
    project = project_mod.load(sql_copy)
    assert next(f for f in project.versioned() if f.version == 93).transactional is False
    migrate.apply(connector(empty_db_url), project)
    with psycopg.connect(empty_db_url) as conn:
        found = {
            r[0]
            for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'idx_sessions_%'")
        }
    assert found == {"idx_sessions_metadata", "idx_sessions_currency"}
    assert ("tables/V093__concurrent_index.sql",) in [(n,) for n, _ in history(empty_db_url)]


def test_eight_concurrent_applies_apply_each_file_once(empty_db_url, project):
    barrier = threading.Barrier(8)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(migrate.apply(connector(empty_db_url), project, lock_timeout=120))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(r.steps) for r in results) == [0] * 7 + [len(project.files())]
    names = [name for name, _ in history(empty_db_url)]
    assert len(names) == len(set(names)) == len(project.files())


def test_lock_timeout_names_the_holder(empty_db_url, project):
    holder = psycopg.connect(empty_db_url, autocommit=True, application_name="someone else's apply")
    try:
        with advisory_lock(holder, APPLY_LOCK, 1, what="apply"), pytest.raises(LockTimeout) as info:
            migrate.apply(connector(empty_db_url), project, lock_timeout=0.3)
    finally:
        holder.close()
    message = str(info.value)
    assert "someone else's apply" in message and "pg_terminate_backend" in message
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('runner_schema_history')").fetchone()[0] is None


def test_dry_run_changes_nothing(empty_db_url, project):
    result = migrate.apply(connector(empty_db_url), project, dry_run=True)
    assert len(result.steps) == len(project.files())
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('payment_checkout_sessions')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('runner_schema_history')").fetchone()[0] is None


def test_baseline_resolves_drift(empty_db_url, sql_copy):
    migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    edited = sql_copy / "sql" / "tables" / "V005__error_logs.sql"
    edited.write_text(
        edited.read_text() + "\nCOMMENT ON COLUMN error_logs.category IS 'database, stripe, ...';\n"
    )
    with pytest.raises(DriftError):
        migrate.apply(connector(empty_db_url), project_mod.load(sql_copy))
    migrate.baseline(connector(empty_db_url), project_mod.load(sql_copy), "V005__error_logs")
    assert migrate.apply(connector(empty_db_url), project_mod.load(sql_copy)).steps == []


# -- project model --------------------------------------------------------------------------------
def test_undefined_template_name_is_an_error(sql_copy):
    (sql_copy / "sql" / "functions" / "oops.sql").write_text("SELECT {{ settings.no_such_setting }};\n")
    with pytest.raises(TemplateError, match="sql/functions/oops.sql: .*no_such_setting"):
        project_mod.load(sql_copy).repeatables()


def test_duplicate_version_is_an_error(sql_copy):
    (sql_copy / "sql" / "tables" / "V003__again.sql").write_text("SELECT 1;\n")
    with pytest.raises(ProjectError, match="version 3 is also used"):
        project_mod.load(sql_copy).versioned()


def test_badly_named_table_file_is_an_error(sql_copy):
    (sql_copy / "sql" / "tables" / "add_column.sql").write_text("SELECT 1;\n")
    with pytest.raises(ProjectError, match="V<number>__<description>.sql"):
        project_mod.load(sql_copy).versioned()


def test_dependency_cycle_and_unknown_dependency_are_errors(sql_copy):
    functions = sql_copy / "sql" / "functions"
    (functions / "a_one.sql").write_text("-- depends: b_two\nSELECT 1;\n")
    (functions / "b_two.sql").write_text("-- depends: a_one\nSELECT 1;\n")
    with pytest.raises(ProjectError, match="dependency cycle among a_one, b_two"):
        project_mod.load(sql_copy).repeatables()
    (functions / "b_two.sql").write_text("-- depends: nowhere\nSELECT 1;\n")
    with pytest.raises(ProjectError, match="depends on 'nowhere'"):
        project_mod.load(sql_copy).repeatables()


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("expiry_hours = 24", "expiry_hours = 0", "expiry_hours must be a positive whole number"),
        (
            'schema = "public"',
            'schema = "public; DROP TABLE users"',
            "settings.schema must be a lower-case SQL identifier",
        ),
        ('price = "9.99"', 'price = "free"', "needs a positive price"),
        ('code = "pro"', 'code = "basic"', "appears twice"),
    ],
)
def test_bad_configuration_is_refused(sql_copy, old, new, message):
    config = sql_copy / "sql" / "project.toml"
    config.write_text(config.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError, match=message):
        project_mod.load(sql_copy)


def test_sql_literal_quotes():
    assert project_mod.sql_literal("O'Brien") == "'O''Brien'"
    assert project_mod.sql_literal(None) == "NULL"
    assert project_mod.sql_literal(True) == "TRUE"


def test_split_statements_keeps_dollar_quoted_bodies():
    sql = "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\nSELECT 2;\n"
    assert migrate.split_statements(sql) == [
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;",
        "SELECT 2;",
    ]
