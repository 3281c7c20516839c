-- runner adopt: the ordinary tables of a schema, with their comments (parameters: schema).
SELECT c.relname AS table_name, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
 ORDER BY c.relname
