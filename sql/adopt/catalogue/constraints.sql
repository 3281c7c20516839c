-- runner adopt: the constraints of some tables (parameters: schema, tables), with the index behind a
-- primary key or unique constraint. Read with search_path set to the schema.
SELECT c.relname AS table_name, k.conname AS name, k.contype AS type, pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated, i.relname AS index_name,
       CASE WHEN k.conindid <> 0 THEN pg_get_indexdef(k.conindid) END AS index_definition
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class i ON i.oid = k.conindid
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND k.contype IN ('c', 'f', 'u', 'p', 'x')
 ORDER BY c.relname, k.conname
