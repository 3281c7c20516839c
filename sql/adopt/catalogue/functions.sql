-- runner adopt: the functions of a schema (parameters: schema): identity arguments and result, what calls
-- them by name is found in the bodies of the others. Read with search_path set to the schema.
SELECT p.oid::bigint AS oid, p.proname AS name, pg_get_function_identity_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result, p.prokind AS kind, p.prosrc AS source
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s
 ORDER BY p.proname, 3
