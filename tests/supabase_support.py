"""A Supabase-shaped database, built on the test server from Supabase's public facts, and PostgREST-style callers.

What Supabase's open-source `postgres` image sets up (supabase/postgres, read for this file):
- migrations/db/init-scripts/00000000000000-initial-schema.sql: roles anon and authenticated (NOLOGIN),
  service_role (NOLOGIN BYPASSRLS), authenticator (LOGIN NOINHERIT, member of the three) and supabase_admin
  (superuser); schema `extensions` with pgcrypto and uuid-ossp; USAGE on public for postgres, anon,
  authenticated, service_role; default privileges giving those four ALL on the tables, functions and
  sequences created in public (run as postgres by migrations/db/migrate.sh, and "for user supabase_admin").
- migrations/db/init-scripts/00000000000001-auth-schema.sql: schema `auth`, table auth.users (owned by
  supabase_auth_admin), auth.uid()/auth.role()/auth.email(), USAGE on auth for the API roles.
- migrations/db/migrations/10000000000000_demote-postgres.sql and 20211115181400_update-auth-permissions.sql:
  postgres is demoted to NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS, with ALL on the tables
  of auth (hence TRIGGER and REFERENCES on auth.users).
- migrations/db/migrations/20230529180330_alter_api_roles_for_inherit.sql: anon, authenticated and
  service_role INHERIT.
- supabase/auth migrations/tenant/20211202183645_update_auth_uid.up.sql: auth.uid() reads
  `request.jwt.claim.sub`, else the `sub` of the JSON in `request.jwt.claims` (what PostgREST sets).

Roles are the server's (shared by its databases), so they are created once and kept. The test server's own
superuser is usually called `postgres`; Supabase's non-superuser `postgres` is then played by a role with
its attributes under another name (SUPABASE_OWNER), which is what `runner apply` connects as.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from runner import migrate
from runner import project as project_mod

API_ROLES = ("anon", "authenticated", "service_role")
# The reference's plans, as its create-checkout route prices them.
PRICES = {"basic": Decimal("9.99"), "pro": Decimal("29.99"), "enterprise": Decimal("99.99")}


def owner_role(admin: psycopg.Connection) -> str:
    """Supabase's `postgres`: that name when it is free (or already a non-superuser), else a stand-in."""
    row = admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'").fetchone()
    return "postgres" if row is None or not row[0] else "supabase_postgres"


def _create_role(admin: psycopg.Connection, name: str, attributes: str) -> None:
    # Another test session on the same server may create it at the same moment: either error means it exists.
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
        try:
            admin.execute(f'CREATE ROLE "{name}" {attributes}')
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass
    admin.execute(f'ALTER ROLE "{name}" {attributes}')


def create_roles(admin: psycopg.Connection) -> str:
    """Supabase's roles on the server (idempotent); returns the name of its `postgres` role."""
    owner = owner_role(admin)
    _create_role(admin, "supabase_admin", "SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS NOLOGIN")
    _create_role(admin, "supabase_auth_admin", "NOINHERIT CREATEROLE LOGIN NOREPLICATION")
    _create_role(admin, owner, "NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS")
    _create_role(admin, "anon", "NOLOGIN INHERIT")
    _create_role(admin, "authenticated", "NOLOGIN INHERIT")
    _create_role(admin, "service_role", "NOLOGIN INHERIT BYPASSRLS")
    _create_role(admin, "authenticator", "LOGIN NOINHERIT")
    for role in API_ROLES:
        admin.execute(f"GRANT {role} TO authenticator")
    return owner


def build(admin_url: str, dbname: str) -> str:
    """Shape the (new, empty) database `dbname` like a new Supabase project; returns its `postgres` role."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        owner = create_roles(admin)
        admin.execute(f'GRANT ALL ON DATABASE "{dbname}" TO "{owner}"')
    with psycopg.connect(make_conninfo(admin_url, dbname=dbname), autocommit=True) as db:
        db.execute("SET ROLE supabase_admin")
        db.execute("CREATE SCHEMA IF NOT EXISTS extensions")
        # The embedded server's binaries ship without contrib: the extensions are made where available (the
        # project needs neither; gen_random_uuid() is in core since PostgreSQL 13).
        for extension in ("pgcrypto", "uuid-ossp"):
            if db.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (extension,)).fetchone():
                db.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}" WITH SCHEMA extensions')
        db.execute(f'GRANT USAGE ON SCHEMA public TO "{owner}", anon, authenticated, service_role')
        db.execute(f'GRANT ALL ON SCHEMA public TO "{owner}"')
        db.execute(f'GRANT USAGE ON SCHEMA extensions TO "{owner}", anon, authenticated, service_role')
        for kind in ("TABLES", "FUNCTIONS", "SEQUENCES"):
            for creator in (owner, "supabase_admin"):
                db.execute(
                    f'ALTER DEFAULT PRIVILEGES FOR ROLE "{creator}" IN SCHEMA public '
                    f'GRANT ALL ON {kind} TO "{owner}", anon, authenticated, service_role'
                )

        db.execute("CREATE SCHEMA auth AUTHORIZATION supabase_admin")
        db.execute("""
            CREATE TABLE auth.users (
              instance_id uuid, id uuid NOT NULL PRIMARY KEY, aud varchar(255), role varchar(255),
              email varchar(255) UNIQUE, encrypted_password varchar(255), confirmed_at timestamptz,
              raw_app_meta_data jsonb, raw_user_meta_data jsonb, created_at timestamptz, updated_at timestamptz
            )""")
        db.execute("""
            CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
              SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                                     (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')), '')::uuid
            $$""")
        db.execute("""
            CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
              SELECT nullif(coalesce(current_setting('request.jwt.claim.role', true),
                                     (current_setting('request.jwt.claims', true)::jsonb ->> 'role')), '')::text
            $$""")
        db.execute("GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role")
        db.execute("ALTER TABLE auth.users OWNER TO supabase_auth_admin")
        db.execute("GRANT ALL ON SCHEMA auth TO supabase_auth_admin")
        db.execute(f'GRANT USAGE ON SCHEMA auth TO "{owner}"')
        db.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA auth TO "{owner}"')
        db.execute(f'GRANT ALL ON ALL ROUTINES IN SCHEMA auth TO "{owner}"')
    return owner


def supabase_project(project: project_mod.Project) -> project_mod.Project:
    """The same SQL project with platform = "supabase"."""
    config = {**project.config, "settings": {**project.settings, "platform": "supabase"}}
    return project_mod.Project(sql_dir=project.sql_dir, config=config)


def apply(admin_url: str, dbname: str, project: project_mod.Project, owner: str) -> None:
    """`runner apply` as Supabase's `postgres` (not a superuser)."""
    url = make_conninfo(admin_url, dbname=dbname, user=owner)
    migrate.apply(lambda: psycopg.connect(url, autocommit=True), project)


def sign_up(admin_url: str, dbname: str, email: str | None = None) -> uuid.UUID:
    """What Supabase Auth does on sign-up: a row in auth.users, written as supabase_auth_admin."""
    user_id = uuid.uuid4()
    with psycopg.connect(
        make_conninfo(admin_url, dbname=dbname, user="supabase_auth_admin"), autocommit=True
    ) as auth:
        auth.execute(
            "INSERT INTO auth.users (id, aud, role, email, created_at) "
            "VALUES (%s, 'authenticated', 'authenticated', %s, now())",
            (user_id, email or f"user-{user_id.hex[:8]}@example.com"),
        )
    return user_id


@contextmanager
def as_role(
    admin_url: str, dbname: str, role: str, sub: uuid.UUID | None = None
) -> Iterator[psycopg.Connection]:
    """A connection that acts as `role` the way PostgREST does: logged in as authenticator, in a transaction
    that SET LOCAL ROLEs and sets `request.jwt.claims` (local). Rolled back at the end."""
    conn = psycopg.connect(make_conninfo(admin_url, dbname=dbname, user="authenticator"))
    try:
        claims: dict[str, Any] = {"role": role}
        if sub is not None:
            claims["sub"] = str(sub)
        conn.execute(f"SET LOCAL ROLE {role}")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield conn
    finally:
        conn.rollback()
        conn.close()


def rpc(conn: psycopg.Connection, function: str, **arguments: Any) -> Any:
    """Call `function` with named arguments, as PostgREST's /rpc does; returns the first column of the first row."""
    from psycopg import sql

    call = sql.SQL("SELECT {}({})").format(
        sql.Identifier(function),
        sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder()) for k in arguments
        ),
    )
    row = conn.execute(call, list(arguments.values())).fetchone()
    return None if row is None else row[0]


def reference_checkout(
    conn: psycopg.Connection, user_id: uuid.UUID, plan: str = "pro", email: str = "buyer@example.com"
) -> Any:
    """The reference's create-checkout RPC: get_or_create_checkout_session for `plan` at its price, via Stripe."""
    return rpc(
        conn,
        "get_or_create_checkout_session",
        p_user_id=user_id,
        p_email=email,
        p_plan=plan,
        p_price=PRICES[plan],
        p_provider="stripe",
    )


def make_supabase_database(make_database: Callable[..., str], admin_url: str) -> tuple[str, str]:
    """A new Supabase-shaped database: (its name, its `postgres` role)."""
    url = make_database()
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    return dbname, build(admin_url, dbname)
