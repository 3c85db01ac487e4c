-- Signet on PostgreSQL: the login, its schema and grants. Run once as a superuser:
--   psql -v signet_user=signet -v signet_password=... -v signet_schema=signet \
--        -v signet_database=signet -f db/postgresql/bootstrap.sql
-- Then `signet db upgrade` creates the tables as that login (or apply schema.sql).
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'signet_user', :'signet_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'signet_user') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'signet_user', :'signet_password') \gexec

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0',
              :'signet_database', :'signet_user', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'signet_database') \gexec

\connect :"signet_database"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS :"signet_schema" AUTHORIZATION :"signet_user";
ALTER ROLE :"signet_user" IN DATABASE :"signet_database" SET search_path = :"signet_schema";
GRANT CONNECT, TEMPORARY ON DATABASE :"signet_database" TO :"signet_user";
