{#- Macros of runner adopt's resolutions (sql/adopt/resolve/*.sql). Import with:
    {% import "adopt/macros.sql" as a %} -#}
{% import "macros/common.sql" as m %}

{#- The next batch of a rule's offending rows: those the data test sql/tests/<rule>.sql returns, by id after
    %(after)s, at most %(batch)s; `columns` of them, as the resolution's `offending` CTE. -#}
{% macro offending(rule, id_type, columns="failing.id") -%}
SELECT {{ columns }}
    FROM (
{% include "tests/" ~ rule ~ ".sql" %}
    ) AS failing
   WHERE %(after)s::{{ id_type }} IS NULL OR failing.id > %(after)s::{{ id_type }}
   ORDER BY failing.id
   LIMIT %(batch)s
{%- endmacro %}

{#- What every batch returns to runner/adoption/execute.py, read from its `offending` and `logged` CTEs: rows
    logged, rows looked at, and the last id looked at (`id_column` of offending), where the next batch starts. -#}
{% macro batch_result(id_column="id") -%}
SELECT (SELECT count(*) FROM logged) AS changed,
       (SELECT count(*) FROM offending) AS seen,
       (SELECT o.{{ id_column }}::text FROM offending o ORDER BY o.{{ id_column }} DESC LIMIT 1) AS last_id
{%- endmacro %}

{#- One batch of a resolution: the next rows (by id, after %(after)s, at most %(batch)s) that the data test
    sql/tests/<rule>.sql returns are locked, changed by the SET clause given as the caller's body, and each
    changed row is written to runner_adoption_log with its whole row before and after, in the same
    statement. Returns (rows logged, rows looked at, the last id looked at) so the caller goes on from there.
    The before-image is read from the locked row, so a concurrent write that committed first is in it. -#}
{% macro resolve(table, rule, id_type) -%}
WITH offending AS (
  {{ offending(rule, id_type) }}
), target AS (
  SELECT s.id, to_jsonb(s) AS before
    FROM {{ m.q(table) }} s
   WHERE s.id IN (SELECT id FROM offending)
     FOR UPDATE OF s
), changed AS (
  UPDATE {{ m.q(table) }} s
     SET {{ caller() }}
    FROM target t
   WHERE s.id = t.id
  RETURNING s.id, t.before, to_jsonb(s) AS after
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT {{ table | sql_literal }}, c.id::text, {{ rule | sql_literal }}, c.before, c.after
    FROM changed c
   WHERE c.before IS DISTINCT FROM c.after
  RETURNING 1
)
{{ batch_result() }}
{%- endmacro %}

{#- A plan code in the catalogue's format (^[a-z0-9][a-z0-9_-]{0,49}$) made from any text: lower case, runs
    of other characters as one '-', no leading '-' or '_', at most 50 characters; 'unknown' when nothing is
    left. A code already in that format is returned unchanged. -#}
{% macro plan_code(expr) -%}
left(coalesce(nullif(ltrim(regexp_replace(lower(btrim({{ expr }})), '[^a-z0-9_-]+', '-', 'g'), '-_'), ''), 'unknown'), 50)
{%- endmacro %}

{#- Add the plan codes that some rows use but the catalogue lacks as inactive plans, and move rows whose code
    is not in the catalogue's format to its normalised form (keeping the original in the log, and in metadata
    where the table has it). `codes` is a query of (id, code) rows: one batch of the offending rows. -#}
{% macro add_plans(table, rule, id_type, code_column, has_metadata) -%}
WITH offending AS (
  {{ offending(rule, id_type, "failing.id, failing." ~ code_column ~ " AS original") }}
), codes AS (
  SELECT DISTINCT o.original, {{ plan_code("o.original") }} AS code
    FROM offending o
), new_plans AS (
  INSERT INTO {{ m.q("subscription_plans") }} (code, name, price, currency, billing_interval, active)
  SELECT DISTINCT ON (c.code) c.code, left(btrim(c.original), 255),
         coalesce((SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s.plan_price)
                     FROM {{ m.q("payment_checkout_sessions") }} s
                    WHERE s.subscription_plan = c.original AND s.plan_price > 0),
                  (SELECT min(p.price) FROM {{ m.q("subscription_plans") }} p),
                  0.01),
         {{ settings.default_currency | sql_literal }}, 'month', FALSE
    FROM codes c
   ORDER BY c.code, c.original
  ON CONFLICT (code) DO NOTHING
  RETURNING code, to_jsonb({{ m.q("subscription_plans") }}.*) AS after
), target AS (
  SELECT s.id, to_jsonb(s) AS before
    FROM {{ m.q(table) }} s
   WHERE s.id IN (SELECT o.id FROM offending o JOIN codes c ON c.original = o.original WHERE c.code <> c.original)
     FOR UPDATE OF s
), changed AS (
  UPDATE {{ m.q(table) }} s
     SET {{ code_column }} = c.code
         {%- if has_metadata %},
         metadata = coalesce(s.metadata, '{}'::jsonb) || jsonb_build_object('adoption_original_plan', s.{{ code_column }})
         {%- endif %}
    FROM target t, codes c
   WHERE s.id = t.id AND c.original = s.{{ code_column }}
  RETURNING s.id, t.before, to_jsonb(s) AS after
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT {{ table | sql_literal }}, c.id::text, {{ rule | sql_literal }}, c.before, c.after FROM changed c
  UNION ALL
  SELECT 'subscription_plans', n.code, {{ rule | sql_literal }}, NULL, n.after FROM new_plans n
  RETURNING 1
)
{{ batch_result() }}
{%- endmacro %}
