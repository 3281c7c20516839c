{#- The generic data tests declared in sql/project.toml ([tests.<table>]), one macro per kind; each renders
    ONE query returning the rows that break the rule (runner/quality/datatests.py runs them). Table and
    column names are checked as lower-case identifiers before they get here. -#}
{% import "macros/common.sql" as m %}

{#- Values of `columns` (together) that more than one row holds; NULLs are not compared. -#}
{% macro unique(table, columns) -%}
SELECT {{ columns | join(", ") }}, count(*) AS occurrences
  FROM {{ m.q(table) }}
 WHERE {% for c in columns %}{{ c }} IS NOT NULL{{ " AND " if not loop.last }}{% endfor %}
 GROUP BY {{ columns | join(", ") }}
HAVING count(*) > 1
{%- endmacro %}

{% macro not_null(table, columns) -%}
SELECT *
  FROM {{ m.q(table) }}
 WHERE {{ columns[0] }} IS NULL
{%- endmacro %}

{#- Rows whose `column` is set to something not in `values` (compared as text). -#}
{% macro accepted_values(table, column, values) -%}
SELECT *
  FROM {{ m.q(table) }}
 WHERE {{ column }} IS NOT NULL
   AND {{ column }}::text NOT IN ({% for v in values %}{{ v | string | sql_literal }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- Rows whose `column` is set but names no row of to_table.to_column (a foreign key the schema does not
    declare, or one an adopted database lacked). -#}
{% macro relationships(table, column, to_table, to_column) -%}
SELECT child.*
  FROM {{ m.q(table) }} AS child
 WHERE child.{{ column }} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM {{ m.q(to_table) }} AS parent WHERE parent.{{ to_column }} = child.{{ column }})
{%- endmacro %}

{#- Rows for which `condition` is false (NULL passes, as in a CHECK constraint). -#}
{% macro expression(table, condition) -%}
SELECT *
  FROM {{ m.q(table) }}
 WHERE NOT ({{ condition }})
{%- endmacro %}
