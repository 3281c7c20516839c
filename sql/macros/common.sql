{#- Shared macros for the SQL project. Import with: {% import "macros/common.sql" as m %} -#}

{#- A schema-qualified, quoted-as-needed name: {{ m.q("users") }} -> public.users -#}
{% macro q(name) -%}
{{ settings.schema }}.{{ name }}
{%- endmacro %}

{#- The statuses a checkout session can have, as a SQL list: ('pending', 'completed', ...) -#}
{% macro status_list() -%}
('pending', 'completed', 'expired', 'canceled', 'failed')
{%- endmacro %}

{#- Pin search_path on a function so callers cannot redirect the names it uses. -#}
{% macro pinned_search_path() -%}
SET search_path = {{ settings.schema }}, pg_temp
{%- endmacro %}

{#- Run a function with its owner's privileges (the application role has EXECUTE only, no table access).
    Put it in every definition: CREATE OR REPLACE without it turns a function back into SECURITY INVOKER.
    Always together with pinned_search_path(), so a caller cannot redirect the names the function uses. -#}
{% macro security_definer() -%}
SECURITY DEFINER
{%- endmacro %}

{#- Take the transaction-scoped advisory lock on one Stripe event id (two int4 keys: runner/locks.py's
    WEBHOOK_EVENT_LOCK_CLASS, then the id's hash), in PL/pgSQL. Deliveries, replays and failure records of one
    event take turns on it; a hash collision only makes two events take turns. -#}
{% macro lock_webhook_event(event_id) -%}
PERFORM pg_catalog.pg_advisory_xact_lock({{ locks.webhook_event_class }}, pg_catalog.hashtext({{ event_id }}))
{%- endmacro %}

{#- Refuse a NULL or non-positive argument with SQLSTATE 22023, in PL/pgSQL: {{ m.require_positive("p_limit") }}.
    null_ok=true lets NULL through (it means "the default"). One wording for every such check. -#}
{% macro require_positive(name, null_ok=false) -%}
IF {% if null_ok %}{{ name }} IS NOT NULL AND {% else %}{{ name }} IS NULL OR {% endif %}{{ name }} <= 0 THEN
    RAISE EXCEPTION '{{ name }} must be positive, got %', coalesce({{ name }}::text, 'NULL') USING ERRCODE = '22023';
  END IF;
{%- endmacro %}
