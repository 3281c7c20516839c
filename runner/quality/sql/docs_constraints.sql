-- runner docs: the constraints of the schema's tables (NOT NULL is shown with the columns).
SELECT k.conrelid AS table_oid, k.conname AS name,
       CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique' WHEN 'f' THEN 'foreign key'
                      WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion' ELSE k.contype::text END AS kind,
       pg_get_constraintdef(k.oid, true) AS definition,
       k.convalidated AS validated,
       -- linked on the page when it is documented there too (same schema; not e.g. Supabase's auth.users)
       CASE WHEN k.contype = 'f' AND r.relnamespace = c.relnamespace THEN r.relname END AS references_table
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class r ON r.oid = k.confrelid
 WHERE n.nspname = %(schema)s AND k.contype <> 'n'
 ORDER BY k.conrelid, array_position(ARRAY['p', 'u', 'f', 'c', 'x']::"char"[], k.contype), k.conname;
