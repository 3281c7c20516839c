-- depends: checkout_session_rollup
-- The rollup's read side: what reports, the dashboard and /metrics read (the rollup plus its unfolded
-- deltas), apart from the write side so that editing a read re-creates these functions only, without
-- rebuilding the rollup under a SHARE lock.
{% import "macros/common.sql" as m %}
{% import "macros/rollup.sql" as r %}
{% set bands, measures, band = r.bands, r.measures, r.band %}

-- What readers read: the rollup plus the deltas not folded into it yet, one row per hour, plan and
-- status that has sessions (exactly the raw table's GROUP BY). A condition on bucket reaches both tables
-- (the planner pushes it below the GROUP BY and into each branch), so a window reads the rollup's primary
-- key range and the small delta table.
CREATE OR REPLACE VIEW {{ m.q("checkout_session_rollup_current") }} AS
SELECT u.bucket, u.subscription_plan, u.status,
{%- for column in measures %}
       sum(u.{{ column }}){{ "" if column == "complete_seconds" else "::bigint" }} AS {{ column }}{{ "," if not loop.last }}
{%- endfor %}
  FROM (SELECT bucket, subscription_plan, status, {{ measures | join(", ") }}
          FROM {{ m.q("checkout_session_rollup") }}
        UNION ALL
        SELECT bucket, subscription_plan, status, {{ measures | join(", ") }}
          FROM {{ m.q("checkout_session_rollup_delta") }}) AS u
 GROUP BY u.bucket, u.subscription_plan, u.status
HAVING sum(u.sessions) <> 0;

COMMENT ON VIEW {{ m.q("checkout_session_rollup_current") }} IS
  'checkout_session_rollup plus checkout_session_rollup_delta: sessions by UTC hour of created_at, plan and '
  'status, equal to payment_checkout_sessions whether or not fold_checkout_session_rollup() ran.';

-- Its columns grew with the completion bands (V031): a changed result type needs a DROP first.
DROP FUNCTION IF EXISTS {{ m.q("checkout_session_stats_since") }}(TIMESTAMPTZ);
CREATE FUNCTION {{ m.q("checkout_session_stats_since") }}(p_since TIMESTAMPTZ)
RETURNS TABLE (bucket TIMESTAMPTZ, subscription_plan VARCHAR, status VARCHAR, sessions BIGINT,
               retried BIGINT, attempts BIGINT, complete_seconds NUMERIC,
               {% for column in bands %}{{ column }} BIGINT{{ ", " if not loop.last }}{% endfor %})
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  -- Exactly the sessions with created_at > p_since (all of them when p_since is NULL), by hour:
  -- whole hours from the rollup and its unfolded deltas, the partial first hour from the table.
  SELECT r.bucket, r.subscription_plan, r.status, r.sessions, r.retried, r.attempts, r.complete_seconds,
         {% for column in bands %}r.{{ column }}{{ ", " if not loop.last }}{% endfor %}
    FROM {{ m.q("checkout_session_rollup_current") }} r
   WHERE r.bucket >= {{ m.q("checkout_rollup_bucket") }}(p_since) + INTERVAL '1 hour'
  UNION ALL
  -- All of it when p_since is NULL: a branch of its own, so the windowed branch above keeps its index range.
  SELECT r.bucket, r.subscription_plan, r.status, r.sessions, r.retried, r.attempts, r.complete_seconds,
         {% for column in bands %}r.{{ column }}{{ ", " if not loop.last }}{% endfor %}
    FROM {{ m.q("checkout_session_rollup_current") }} r
   WHERE p_since IS NULL
  UNION ALL
  SELECT {{ m.q("checkout_rollup_bucket") }}(s.created_at), s.subscription_plan, s.status,
         count(*), count(*) FILTER (WHERE s.attempts > 1), sum(s.attempts),
         coalesce(sum(extract(epoch FROM s.completed_at - s.created_at)) FILTER (WHERE s.status = 'completed'), 0),
{%- for column in bands %}
         count(*) FILTER (WHERE s.status = 'completed' AND {{ band("s.") }} = {{ loop.index }}){{ "," if not loop.last }}
{%- endfor %}
    FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE p_since IS NOT NULL
     AND s.created_at > p_since
     AND s.created_at < {{ m.q("checkout_rollup_bucket") }}(p_since) + INTERVAL '1 hour'
   GROUP BY 1, 2, 3;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_stats_since") }}(TIMESTAMPTZ) IS
  'Session counts (and completion-time bands) by UTC hour, plan and status for created_at > p_since (NULL: all): '
  'checkout_session_rollup_current plus the partial first hour.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_session_totals") }}()
RETURNS TABLE (subscription_plan VARCHAR, status VARCHAR, sessions BIGINT, retried BIGINT, attempts BIGINT,
               complete_seconds NUMERIC)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  -- All-time totals per plan and status straight from the rollup and its deltas: one small hash
  -- aggregate, without first regrouping every hour as checkout_session_rollup_current does (a sum over
  -- hours equals the sum of the hours' sums, and keys whose sessions net to zero add nothing).
  SELECT u.subscription_plan, u.status, sum(u.sessions)::bigint, sum(u.retried)::bigint,
         sum(u.attempts)::bigint, sum(u.complete_seconds)
    FROM (SELECT r.subscription_plan, r.status, r.sessions, r.retried, r.attempts, r.complete_seconds
            FROM {{ m.q("checkout_session_rollup") }} r
          UNION ALL
          SELECT d.subscription_plan, d.status, d.sessions, d.retried, d.attempts, d.complete_seconds
            FROM {{ m.q("checkout_session_rollup_delta") }} d) AS u
   GROUP BY u.subscription_plan, u.status
  HAVING sum(u.sessions) <> 0;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_totals") }}() IS
  'All-time session counts per plan and status (rollup plus unfolded deltas): equal to a GROUP BY over '
  'payment_checkout_sessions, without reading it.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_session_counts") }}(p_since TIMESTAMPTZ)
RETURNS TABLE (subscription_plan VARCHAR, status VARCHAR, sessions BIGINT)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  -- Sessions per plan and status created after p_since; all time when it is NULL, from the per-plan totals
  -- (no regrouping of every hour). One branch runs: the other's condition is a one-time filter, false.
  SELECT t.subscription_plan, t.status, t.sessions
    FROM {{ m.q("checkout_session_totals") }}() t
   WHERE p_since IS NULL
  UNION ALL
  SELECT w.subscription_plan, w.status, sum(w.sessions)::bigint
    FROM {{ m.q("checkout_session_stats_since") }}(p_since) w
   WHERE p_since IS NOT NULL
   GROUP BY w.subscription_plan, w.status;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_counts") }}(TIMESTAMPTZ) IS
  'Session counts per plan and status for created_at > p_since (NULL: all time, from checkout_session_totals).';
