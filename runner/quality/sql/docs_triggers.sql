-- runner docs: the user-defined triggers of the schema's tables and the function each runs.
SELECT t.tgrelid AS table_oid, t.tgname AS name, pg_get_triggerdef(t.oid, true) AS definition,
       p.proname AS function, t.tgenabled <> 'D' AS enabled
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
 ORDER BY t.tgrelid, t.tgname;
