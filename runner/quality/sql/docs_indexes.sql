-- runner docs: the indexes of the schema's tables, with the constraint each backs and its size.
SELECT i.indrelid AS table_oid, ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique AS is_unique, i.indisvalid AS valid, pg_relation_size(i.indexrelid) AS bytes,
       obj_description(i.indexrelid, 'pg_class') AS comment,
       (SELECT k.conname FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
         LIMIT 1) AS constraint_name
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s
 ORDER BY i.indrelid, ic.relname;
