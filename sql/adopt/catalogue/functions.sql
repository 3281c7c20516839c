-- runner adopt: the functions of a schema (parameters: schema): identity arguments and result, the roles
-- granted EXECUTE by name (kept when adoption replaces the function); what calls them is read from bodies. Read with search_path set to the schema.
SELECT p.oid::bigint AS oid, p.proname AS name, pg_get_function_identity_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result, p.prokind AS kind, p.prosrc AS source,
       ARRAY(SELECT a.grantee::regrole::text FROM aclexplode(p.proacl) a
              WHERE a.privilege_type = 'EXECUTE' AND a.grantee NOT IN (0, p.proowner)
              ORDER BY 1) AS executors
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s
 ORDER BY p.proname, 3
