-- Signet on Microsoft SQL Server (2019 or later): login, database, user and schema.
-- Run with sqlcmd as a sysadmin:
--   sqlcmd -v signet_user=signet signet_password="..." signet_database=signet \
--          signet_schema=signet -i db/mssql/bootstrap.sql
-- Then `signet db upgrade` creates the tables as that login (or apply schema.sql).
:on error exit

IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'$(signet_user)')
    CREATE LOGIN [$(signet_user)] WITH PASSWORD = N'$(signet_password)', CHECK_POLICY = ON;
GO
IF DB_ID(N'$(signet_database)') IS NULL
    CREATE DATABASE [$(signet_database)];
GO
-- Snapshot reads so that readers never block the SAD spend or the audit append.
ALTER DATABASE [$(signet_database)] SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE;
GO
USE [$(signet_database)];
GO
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(signet_user)')
    CREATE USER [$(signet_user)] FOR LOGIN [$(signet_user)] WITH DEFAULT_SCHEMA = [$(signet_schema)];
GO
IF SCHEMA_ID(N'$(signet_schema)') IS NULL
    EXEC (N'CREATE SCHEMA [$(signet_schema)] AUTHORIZATION [$(signet_user)]');
GO
GRANT CREATE TABLE, CREATE VIEW TO [$(signet_user)];
GO
