-- runner: finally
-- Who may do what (least privilege). Runs after every other file of sql/functions/ and again after any
-- apply that applied something (the `finally` directive), so a function that was dropped and created
-- again gets its grants back. Everything is owned by the role that runs `runner apply`.
--
--   PUBLIC           nothing: no schema access, no EXECUTE on any function (also for functions created later).
--   app_role         the web service (`runner serve`): EXECUTE on exactly the functions it calls; no table
--                    privileges at all: what it reads and writes goes through SECURITY DEFINER functions.
--   jobs_role        the jobs (`runner job ...`): the same, for the functions the jobs call.
--   reporting_role   SELECT on the tables the reports read; EXECUTE on the read-only helpers (STABLE or
--                    IMMUTABLE, not SECURITY DEFINER); nothing that writes.
--
-- Neither may record a Stripe event without Stripe's signature: record_webhook_event checks it against
-- webhook_secrets, which no role here can read. Replaying a stored event (`runner webhook replay`) and the
-- webhook secrets are the owner's.
--
-- All are NOLOGIN group roles; grant one to a login role: GRANT checkout_app TO checkout_service;
-- Roles are cluster-wide (one for every database of the server); with manage_roles = false in
-- sql/project.toml a DBA creates them and apply only grants (it stops, saying so, while they are missing).
{% import "macros/common.sql" as m %}
{% set schema = settings.schema %}
{% set app_role = settings.app_role %}
{% set reporting_role = settings.reporting_role %}
{% set jobs_role = settings.jobs_role | default("checkout_jobs") %}
{#- What runner/payments/ (checkout.py, webhook.py) and runner/error_log.py call for the web service.
    Adding a call there means adding its function here (tests/sql/test_privileges.py runs them as this role). -#}
{% set app_functions = [
  "get_or_create_checkout_session", "get_checkout_session", "checkout_plan_terms", "checkout_user_email",
  "link_stripe_session", "get_latest_checkout_session", "set_checkout_session_status", "take_stripe_session_quota",
  "checkout_session_for_stripe_session", "checkout_stripe_session_ids",
  "record_webhook_event", "fail_webhook_event", "log_error",
] %}
{#- What runner/jobs/ (tasks.py, mail.py) calls (tests/sql/test_privileges.py runs every job as this role). -#}
{% set jobs_functions = [
  "expire_old_checkout_sessions", "archive_completed_checkout_sessions",
  "checkout_reminder_candidates", "queue_checkout_reminders", "claim_due_email", "record_email_attempt",
  "start_job_run", "finish_job_run", "record_skipped_job_run", "job_run_history",
  "count_overdue_checkout_sessions", "count_archivable_checkout_sessions", "count_due_emails",
  "fold_checkout_session_rollup", "count_checkout_session_rollup_deltas",
  "log_error",
] %}
{#- What sql/reports/ reads (tests/sql/test_privileges.py runs every report as the reporting role). -#}
{% set reporting_tables = [
  "payment_checkout_sessions", "checkout_session_rollup", "webhook_events", "error_logs", "job_runs",
  "checkout_session_rollup_delta", "checkout_session_rollup_current",
  "payment_checkout_stripe_sessions", "payment_checkout_sessions_archive",
] %}

{% if settings.manage_roles %}
-- Create the group roles when missing. Another apply (of another database on this server) may create one
-- at the same moment: either error means it exists now.
DO $$
DECLARE
  v_role TEXT;
BEGIN
  FOREACH v_role IN ARRAY ARRAY[{{ app_role | sql_literal }}, {{ jobs_role | sql_literal }},
                                {{ reporting_role | sql_literal }}] LOOP
    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role);
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
      RAISE NOTICE 'created role % (NOLOGIN): grant it to a login role', v_role;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN
        NULL;
      WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'role % does not exist and % may not create roles (CREATEROLE): create it as a user '
                        'who may (CREATE ROLE % NOLOGIN), or set manage_roles = false in sql/project.toml '
                        '[settings] and have a DBA create the roles', v_role, current_user, quote_ident(v_role)
          USING ERRCODE = '42501';
    END;
  END LOOP;
END
$$;
{% endif %}

-- PUBLIC gets nothing (CREATE OR REPLACE keeps a function's grants; a new function starts without PUBLIC's).
REVOKE ALL ON SCHEMA {{ schema | sql_ident }} FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA {{ schema | sql_ident }} FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {{ schema | sql_ident }} FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {{ schema | sql_ident }} FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The roles get exactly what this file lists: whatever they had before is revoked first, in the same
-- transaction. A listed function that does not exist fails the apply (a typo must not pass silently).
DO $$
DECLARE
  v_app       TEXT := {{ app_role | sql_literal }};
  v_reporting TEXT := {{ reporting_role | sql_literal }};
  v_jobs      TEXT := {{ jobs_role | sql_literal }};
  v_grantee   TEXT;
  v_name      TEXT;
  v_fn        REGPROCEDURE;
  v_found     BOOLEAN;
BEGIN
  -- With manage_roles = false a DBA creates the roles; without them the service could not work, so say so
  -- now (nothing of this file is applied, and the next apply runs it again).
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_app)
     OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_jobs)
     OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_reporting) THEN
    RAISE EXCEPTION 'role %, % or % does not exist and manage_roles = false in sql/project.toml: create them as a '
                    'user with CREATEROLE (CREATE ROLE % NOLOGIN; CREATE ROLE % NOLOGIN; CREATE ROLE % NOLOGIN) and '
                    'apply again, or set manage_roles = true', v_app, v_jobs, v_reporting, quote_ident(v_app),
                    quote_ident(v_jobs), quote_ident(v_reporting)
      USING ERRCODE = '42704';
  END IF;

  FOREACH v_grantee IN ARRAY ARRAY[v_app, v_jobs, v_reporting] LOOP
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', {{ schema | sql_literal }}, v_grantee);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', {{ schema | sql_literal }}, v_grantee);
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', {{ schema | sql_literal }}, v_grantee);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', {{ schema | sql_literal }}, v_grantee);
  END LOOP;

  FOR v_grantee, v_name IN
      SELECT v_app, f FROM unnest(ARRAY[{% for f in app_functions %}{{ f | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[]) f
      UNION ALL
      SELECT v_jobs, f FROM unnest(ARRAY[{% for f in jobs_functions %}{{ f | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[]) f LOOP
    v_found := FALSE;
    FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = {{ schema | sql_literal }}::regnamespace AND p.proname = v_name LOOP
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_grantee);
      v_found := TRUE;
    END LOOP;
    IF NOT v_found THEN
      RAISE EXCEPTION 'sql/functions/privileges.sql grants function %, which does not exist', v_name
        USING ERRCODE = '42883';
    END IF;
  END LOOP;

  FOREACH v_name IN ARRAY ARRAY[{% for t in reporting_tables %}{{ t | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[] LOOP
    EXECUTE format('GRANT SELECT ON TABLE %I.%I TO %I', {{ schema | sql_literal }}, v_name, v_reporting);
  END LOOP;
  -- Read-only helpers the reports call (checkout_session_stats_since, ...): invoker's rights, so they can
  -- read no more than the SELECT grants above allow.
  FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
               WHERE p.pronamespace = {{ schema | sql_literal }}::regnamespace AND p.prokind = 'f'
                 AND p.provolatile IN ('s', 'i') AND NOT p.prosecdef
                 AND p.prorettype <> 'trigger'::regtype LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_reporting);
  END LOOP;
END
$$;
