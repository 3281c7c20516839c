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
