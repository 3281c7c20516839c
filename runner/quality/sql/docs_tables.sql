-- runner docs: the tables and views of the project's schema (not those of extensions), with comments,
-- size, row estimate, row-level security and who may do what.
SELECT c.oid AS oid, c.relname AS name,
       CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                      WHEN 'p' THEN 'partitioned table' ELSE 'table' END AS kind,
       obj_description(c.oid, 'pg_class') AS comment,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_total_relation_size(c.oid) AS total_bytes,
       c.relrowsecurity AS row_security,
       pg_get_userbyid(c.relowner) AS owner,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END AS view_definition,
       ARRAY(SELECT (CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END) || ': '
                    || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
               FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
              GROUP BY a.grantee ORDER BY 1) AS privileges
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s
   AND c.relkind IN ('r', 'p', 'v', 'm')
   AND NOT c.relispartition
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                               AND d.deptype = 'e')
 ORDER BY c.relkind IN ('v', 'm'), c.relname;
