-- runner lint: the PL/pgSQL functions of the project's schema (not an extension's), with what
-- plpgsql_check needs to check a trigger function: a table one of its triggers is on, and the names of the
-- transition tables its triggers declare (one function may serve an INSERT trigger with NEW TABLE only and
-- an UPDATE trigger with both).
SELECT p.oid::regprocedure::text AS signature,
       p.proname::text AS name,
       tg.relid,
       tg.oldtable,
       tg.newtable,
       p.prorettype = 'pg_catalog.trigger'::regtype AS is_trigger
  FROM pg_catalog.pg_proc AS p
  JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
  LEFT JOIN LATERAL (
    SELECT (array_agg(t.tgrelid ORDER BY t.tgrelid))[1]::bigint AS relid,
           max(t.tgoldtable::text) AS oldtable,
           max(t.tgnewtable::text) AS newtable
      FROM pg_catalog.pg_trigger AS t
     WHERE t.tgfoid = p.oid
  ) AS tg ON true
 WHERE p.pronamespace = %(schema)s::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
