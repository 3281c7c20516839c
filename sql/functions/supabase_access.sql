-- runner: finally
-- depends: privileges
-- Supabase (settings.platform = "supabase" in sql/project.toml): who may see and call what through its API.
-- On plain PostgreSQL ("postgres", the default) this file renders to these comments only.
--
-- Supabase exposes the schema through PostgREST, and its default privileges give anon, authenticated and
-- service_role ALL on every table, sequence and function created there: without this file the public anon key
-- could read every table and call every SECURITY DEFINER function. So, on every apply that applied something
-- (the `finally` directive; after privileges.sql):
--
--   users             get a users row for each auth.users row (a trigger on auth.users, and a backfill), and
--                     users.id references auth.users(id) ON DELETE CASCADE.
--   every table       of the project (runner/project.py: created_objects) has row-level security on, and
--                     anon, authenticated and service_role lose every privilege on it, its sequences and the
--                     project's functions. Only the owner's SECURITY DEFINER functions reach the tables.
--   authenticated     SELECT on its own users row and its own payment_checkout_sessions (auth.uid()); nothing
--                     else: no writes, no function.
--   service_role      (the server key) the reference's calls: get_or_create_checkout_session,
--                     complete_checkout_session, get_latest_checkout_session, expire_old_checkout_sessions,
--                     set_checkout_session_status (its PATCH route), SELECT on users and
--                     payment_checkout_sessions, UPDATE of stripe_session_id only. The
--                     triggers and constraints hold for it as for everyone.
--   anon              nothing.
--   app/reporting     the project's own roles keep exactly what privileges.sql grants: a policy lets them see
--                     every row (a policy grants no privilege, it only stops RLS hiding rows).
--
-- Objects of the schema that the project did not create (the rest of a Supabase app in public) are left alone.
{% import "macros/common.sql" as m %}
{% if settings.platform == "supabase" %}
{% set schema = settings.schema %}
{% set objects = project_objects() %}
{% set api_roles = "anon, authenticated, service_role" %}
{% set own_roles = [settings.app_role, settings.reporting_role] + ([settings.jobs_role] if settings.jobs_role is defined else []) %}
{#- What the reference's server code calls with the service-role key (its RPCs), and set_checkout_session_status
    for its PATCH route (closing a pending session by hand, checked, instead of a direct UPDATE of status). -#}
{% set service_functions = [
  "get_or_create_checkout_session", "complete_checkout_session", "get_latest_checkout_session",
  "expire_old_checkout_sessions", "set_checkout_session_status",
] %}

-- Supabase's pieces must be there: a plain PostgreSQL database with platform = "supabase" stops here.
DO $$
DECLARE
  v_missing TEXT[];
BEGIN
  SELECT array_agg(r) INTO v_missing
    FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) r
   WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
  IF to_regclass('auth.users') IS NULL THEN
    v_missing := array_append(v_missing, 'table auth.users');
  END IF;
  IF to_regprocedure('auth.uid()') IS NULL THEN
    v_missing := array_append(v_missing, 'function auth.uid()');
  END IF;
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'settings.platform is "supabase" but this database has no %', array_to_string(v_missing, ', ')
      USING ERRCODE = '42704',
            HINT = 'Apply to a Supabase database, or set platform = "postgres" in sql/project.toml [settings].';
  END IF;
END
$$;

-- Users are Supabase Auth users: each auth.users row gets its users row (and keeps its email in step), so
-- get_or_create_checkout_session works for anyone who signed up, with no extra step.
CREATE OR REPLACE FUNCTION {{ m.q("users_from_auth_users") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    -- An app's own trigger (Supabase's documented on_auth_user_created) may have inserted it already.
    INSERT INTO users (id, email) VALUES (NEW.id, coalesce(NEW.email, '')) ON CONFLICT (id) DO NOTHING;
  ELSIF NEW.email IS DISTINCT FROM OLD.email THEN
    UPDATE users SET email = coalesce(NEW.email, ''), updated_at = now() WHERE id = NEW.id;
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("users_from_auth_users") }}() IS
  'Trigger on auth.users (Supabase): a new auth user gets its users row; a changed email is copied.';

-- Named to fire after the app's own triggers on auth.users (they fire in name order): an app trigger that
-- inserts the users row without ON CONFLICT then still succeeds, and this one finds the row there.
CREATE OR REPLACE TRIGGER zz_{{ schema }}_users_from_auth_users
  AFTER INSERT OR UPDATE OF email ON auth.users
  FOR EACH ROW EXECUTE FUNCTION {{ m.q("users_from_auth_users") }}();

-- The auth users who signed up before this apply.
INSERT INTO {{ m.q("users") }} (id, email)
SELECT a.id, coalesce(a.email, '') FROM auth.users a
 WHERE NOT EXISTS (SELECT 1 FROM {{ m.q("users") }} u WHERE u.id = a.id)
ON CONFLICT (id) DO NOTHING;

-- users.id references auth.users(id) ON DELETE CASCADE: deleting the auth user deletes its users row and
-- its checkout sessions. Added once; an existing key to auth.users without the cascade is replaced.
DO $$
DECLARE
  v_fk      NAME;
  v_cascade BOOLEAN;
  v_orphans BIGINT;
BEGIN
  SELECT c.conname, c.confdeltype = 'c' INTO v_fk, v_cascade
    FROM pg_constraint c
   WHERE c.conrelid = {{ m.q("users") | sql_literal }}::regclass AND c.contype = 'f'
     AND c.confrelid = 'auth.users'::regclass AND c.conkey = ARRAY[
           (SELECT attnum FROM pg_attribute WHERE attrelid = {{ m.q("users") | sql_literal }}::regclass
                                              AND attname = 'id')]::int2[];
  IF v_cascade THEN
    RETURN;
  END IF;
  SELECT count(*) INTO v_orphans
    FROM {{ m.q("users") }} u WHERE NOT EXISTS (SELECT 1 FROM auth.users a WHERE a.id = u.id);
  IF v_orphans > 0 THEN
    RAISE EXCEPTION '% users row(s) have no auth.users row, so users.id cannot reference auth.users(id)', v_orphans
      USING ERRCODE = '23503',
            HINT = 'Find them with: SELECT * FROM {{ m.q("users") }} u WHERE NOT EXISTS (SELECT 1 FROM auth.users a '
                   'WHERE a.id = u.id); create their auth users (or delete them on purpose), then apply again.';
  END IF;
  IF v_fk IS NOT NULL THEN
    EXECUTE format('ALTER TABLE {{ m.q("users") }} DROP CONSTRAINT %I', v_fk);
  END IF;
  ALTER TABLE {{ m.q("users") }}
    ADD CONSTRAINT users_id_auth_users_fkey FOREIGN KEY (id) REFERENCES auth.users (id) ON DELETE CASCADE;
END
$$;

-- A policy is (re)created only when its definition changed (kept in its comment): an apply that changes
-- nothing here takes no ACCESS EXCLUSIVE lock on the tables the app is using.
CREATE OR REPLACE FUNCTION pg_temp.checkout_policy(p_table REGCLASS, p_name TEXT, p_definition TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
  IF obj_description((SELECT oid FROM pg_policy WHERE polrelid = p_table AND polname = p_name), 'pg_policy')
     IS DISTINCT FROM p_definition THEN
    EXECUTE format('DROP POLICY IF EXISTS %I ON %s', p_name, p_table);
    EXECUTE format('CREATE POLICY %I ON %s %s', p_name, p_table, p_definition);
    EXECUTE format('COMMENT ON POLICY %I ON %s IS %L', p_name, p_table, p_definition);
  END IF;
END;
$$;

-- Row-level security on every project table, and no privilege for Supabase's API roles on any project
-- object; then exactly what each role needs. Tables named runner_* (the runner's bookkeeping, created from
-- Python) count as the project's too.
DO $$
DECLARE
  v_schema TEXT := {{ schema | sql_literal }};
  v_table  REGCLASS;
  v_seq    REGCLASS;
  v_fn     REGPROCEDURE;
  v_role   TEXT;
BEGIN
  FOR v_table IN
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = v_schema::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND (c.relname = ANY (ARRAY[{% for t in objects.tables %}{{ t | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[])
            OR c.relname LIKE 'runner\_%')
  LOOP
    EXECUTE format('REVOKE ALL ON TABLE %s FROM {{ api_roles }}', v_table);
    IF (SELECT relkind FROM pg_class WHERE oid = v_table) IN ('r', 'p') THEN
      IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = v_table) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_table);
      END IF;
      -- The project's own roles see every row; their privileges (privileges.sql) decide what they may do.
      PERFORM pg_temp.checkout_policy(v_table, 'checkout_own_roles_all_rows',
        'FOR ALL TO {{ own_roles | map("sql_ident") | join(", ") }} USING (true) WITH CHECK (true)');
    END IF;
    FOR v_seq IN SELECT d.objid::regclass FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                  WHERE d.classid = 'pg_class'::regclass AND d.refobjid = v_table AND d.deptype IN ('a', 'i') LOOP
      EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM {{ api_roles }}', v_seq);
    END LOOP;
  END LOOP;

  FOR v_fn IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = v_schema::regnamespace
       AND p.proname = ANY (ARRAY[{% for f in objects.functions %}{{ f | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[])
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, {{ api_roles }}', v_fn);
  END LOOP;

  -- service_role: the reference's RPCs (by name, every overload), and a missing one is an error.
  FOREACH v_role IN ARRAY ARRAY[{% for f in service_functions %}{{ f | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = v_schema::regnamespace AND proname = v_role) THEN
      RAISE EXCEPTION 'sql/functions/supabase_access.sql grants function %, which does not exist', v_role
        USING ERRCODE = '42883';
    END IF;
    FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = v_schema::regnamespace AND p.proname = v_role LOOP
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', v_fn);
    END LOOP;
  END LOOP;
END
$$;

-- What the API roles may touch directly: reading their own rows (authenticated), and the server's reads and
-- its one direct write, the reference's `.from('payment_checkout_sessions').update({ stripe_session_id })`.
GRANT SELECT ON {{ m.q("users") }}, {{ m.q("payment_checkout_sessions") }} TO authenticated, service_role;
GRANT UPDATE (stripe_session_id) ON {{ m.q("payment_checkout_sessions") }} TO service_role;

-- authenticated reads its own rows. service_role has BYPASSRLS on Supabase; its policies keep its calls
-- working where it does not (no silent zero-row update); its privileges above still limit it to reading and
-- linking.
SELECT pg_temp.checkout_policy({{ m.q("users") | sql_literal }}, 'users_select_own',
                               'FOR SELECT TO authenticated USING (id = (SELECT auth.uid()))');
SELECT pg_temp.checkout_policy({{ m.q("payment_checkout_sessions") | sql_literal }}, 'checkout_sessions_select_own',
                               'FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()))');
SELECT pg_temp.checkout_policy({{ m.q("users") | sql_literal }}, 'users_service_role',
                               'FOR ALL TO service_role USING (true) WITH CHECK (true)');
SELECT pg_temp.checkout_policy({{ m.q("payment_checkout_sessions") | sql_literal }}, 'checkout_sessions_service_role',
                               'FOR ALL TO service_role USING (true) WITH CHECK (true)');
{% endif %}
