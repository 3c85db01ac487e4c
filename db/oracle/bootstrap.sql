-- Signet on Oracle (19c or later): a schema user with the least privileges it needs.
-- Run as a DBA in SQL*Plus or SQLcl:
--   DEFINE signet_user = SIGNET
--   DEFINE signet_password = "..."
--   DEFINE signet_tablespace = USERS
--   @db/oracle/bootstrap.sql
-- Then `signet db upgrade` (python-oracledb thin mode) creates the tables as that user.
WHENEVER SQLERROR EXIT SQL.SQLCODE

CREATE USER &&signet_user IDENTIFIED BY "&&signet_password"
  DEFAULT TABLESPACE &&signet_tablespace QUOTA UNLIMITED ON &&signet_tablespace;

GRANT CREATE SESSION, CREATE TABLE, CREATE SEQUENCE, CREATE VIEW TO &&signet_user;
