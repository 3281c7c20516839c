-- runner adopt: the indexes of some tables that no constraint owns (parameters: schema, tables), valid or
-- not (a CREATE INDEX CONCURRENTLY that was interrupted leaves an invalid one). Read with search_path set
-- to the schema.
SELECT c.relname AS table_name, i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition,
       x.indisvalid AS valid
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid)
 ORDER BY c.relname, i.relname
