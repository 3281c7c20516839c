-- checkout_session_rollup (with its unfolded deltas) equals the raw counts of payment_checkout_sessions
{#- Every hour, plan and status, every measure: what the reports, the dashboard and /metrics read must be the
    table's own numbers. On a mismatch: SELECT rebuild_checkout_session_rollup(); then look for a writer
    that bypassed the triggers (session_replication_role = replica, a disabled trigger). -#}
{% import "macros/common.sql" as m %}
{% set bands = ["completed_1m", "completed_5m", "completed_15m", "completed_1h", "completed_6h",
                "completed_24h", "completed_more"] %}
{% set measures = ["sessions", "retried", "attempts", "complete_seconds"] + bands %}
WITH raw AS (
  SELECT {{ m.q("checkout_rollup_bucket") }}(created_at) AS bucket, subscription_plan, status,
         count(*) AS sessions,
         count(*) FILTER (WHERE attempts > 1) AS retried,
         sum(attempts) AS attempts,
         coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = 'completed'), 0)
           AS complete_seconds,
{%- for column in bands %}
         count(*) FILTER (WHERE status = 'completed'
                            AND {{ m.q("checkout_completion_band") }}(created_at, completed_at) = {{ loop.index }})
           AS {{ column }}{{ "," if not loop.last }}
{%- endfor %}
    FROM {{ m.q("payment_checkout_sessions") }}
   GROUP BY 1, 2, 3
), rolled AS (
  SELECT bucket, subscription_plan, status, {{ measures | join(", ") }}
    FROM {{ m.q("checkout_session_rollup_current") }}
)
SELECT bucket, subscription_plan, status,
       coalesce(raw.sessions, 0) AS table_sessions, coalesce(rolled.sessions, 0) AS rollup_sessions,
       coalesce(raw.attempts, 0) AS table_attempts, coalesce(rolled.attempts, 0) AS rollup_attempts
  FROM raw FULL JOIN rolled USING (bucket, subscription_plan, status)
 WHERE {% for column in measures %}coalesce(raw.{{ column }}, 0) <> coalesce(rolled.{{ column }}, 0){{ "\n    OR " if not loop.last }}{% endfor %}
 ORDER BY bucket, subscription_plan, status
