-- runner adopt: views, rules and functions that the catalogue records as depending on some tables or
-- functions (parameters: schema, tables, functions as oids), i.e. the team's objects built on ours.
SELECT DISTINCT coalesce(v.relname, p.proname) AS name,
       CASE WHEN v.oid IS NOT NULL THEN 'view' ELSE 'function' END AS kind,
       coalesce(t.relname, f.proname) AS depends_on
  FROM pg_depend d
  LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
  LEFT JOIN pg_class v ON v.oid = r.ev_class
  LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
  LEFT JOIN pg_class t ON d.refclassid = 'pg_class'::regclass AND t.oid = d.refobjid
  LEFT JOIN pg_proc f ON d.refclassid = 'pg_proc'::regclass AND f.oid = d.refobjid
  LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE d.deptype = 'n'
   AND ((t.oid IS NOT NULL AND tn.nspname = %(schema)s AND t.relname = ANY(%(tables)s))
        OR (f.oid IS NOT NULL AND f.oid = ANY(%(functions)s::oid[])))
   AND (v.oid IS NOT NULL OR p.oid IS NOT NULL)
   AND coalesce(v.oid, 0) <> coalesce(t.oid, -1)
 ORDER BY 1
