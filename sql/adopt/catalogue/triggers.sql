-- runner adopt: the user triggers on some tables (parameters: schema, tables).
SELECT c.relname AS table_name, t.tgname AS name, p.proname AS function_name
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND NOT t.tgisinternal
 ORDER BY 1, 2
