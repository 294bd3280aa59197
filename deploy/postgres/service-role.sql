-- One service's PostgreSQL role: it may log in to this database and owns one schema, where its migrations
-- create its tables. It gets no CREATE on the database (so no other schemas), no rights in other services'
-- schemas and none in public. Variables (psql -v): role, schema, password. Run by a superuser; re-runnable.
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \gexec
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SELECT format('CREATE SCHEMA %I AUTHORIZATION %I', :'schema', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = :'schema') \gexec
SELECT format('ALTER SCHEMA %I OWNER TO %I', :'schema', :'role') \gexec
SELECT format('ALTER ROLE %I IN DATABASE %I SET search_path = %I', :'role', :'DBNAME', :'schema') \gexec
