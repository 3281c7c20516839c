{#- The rollup's shared names, for its write side (sql/functions/checkout_session_rollup.sql) and its read
    side (checkout_session_rollup_reads.sql). Import with: {% import "macros/rollup.sql" as r %} -#}
{% import "macros/common.sql" as m %}

{#- The band of a completed row, through the (inlined) checkout_completion_band(). -#}
{% macro band(alias) -%}
{{ m.q("checkout_completion_band") }}({{ alias }}created_at, {{ alias }}completed_at)
{%- endmacro %}
{% set bands = ["completed_1m", "completed_5m", "completed_15m", "completed_1h", "completed_6h", "completed_24h", "completed_more"] %}

{#- The advisory lock (two int4 keys: runner/locks.py's LOCK_CLASS, ROLLUP_FOLD_LOCK) that makes folds and
    rebuilds take turns. -#}
{% set fold_lock = locks.lock_class ~ ", " ~ locks.rollup_fold %}
{% set measures = ["sessions", "retried", "attempts", "complete_seconds"] + bands %}

