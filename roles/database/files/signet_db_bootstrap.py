#!/usr/bin/env python3
"""Run db/<engine>/bootstrap.sql against Oracle or SQL Server from the controller.

Usage: signet_db_bootstrap.py oracle|mssql PATH/bootstrap.sql
Environment: SIGNET_DB_HOST, SIGNET_DB_PORT, SIGNET_DB_SERVICE (Oracle service name, or the
SQL Server database to connect to first), SIGNET_DB_ADMIN_USER, SIGNET_DB_ADMIN_PASSWORD,
SIGNET_DB_VARIABLES (JSON: signet_user, signet_password, signet_schema, signet_database,
signet_tablespace).

The scripts are written for SQL*Plus (&&name substitution, statements ending in ';') and sqlcmd
($(name) substitution, batches separated by GO); this runner speaks the same dialect with
python-oracledb in thin mode or pymssql, so no vendor client is needed. It prints "present" and
changes nothing when Signet's login already exists, else "bootstrapped".
"""

from __future__ import annotations

import json
import os
import re
import sys

LOGIN_EXISTS = {
    "oracle": "SELECT 1 FROM dba_users WHERE username = UPPER(:1)",
    "mssql": "SELECT 1 FROM sys.server_principals WHERE name = %s",
}


def substitute(engine: str, text: str, variables: dict[str, str]) -> str:
    """Replace &&name / &name (Oracle) or $(name) (SQL Server) with the variables' values."""
    pattern = r"&&?(\w+)\.?" if engine == "oracle" else r"\$\((\w+)\)"

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise SystemExit(f"bootstrap.sql uses the variable {name!r}, which is not set")
        return variables[name]

    return re.sub(pattern, value, text)


def statements(engine: str, text: str) -> list[str]:
    """Split a script the way SQL*Plus or sqlcmd would, dropping client-only directives."""
    kept = []
    for line in text.splitlines():
        bare = line.strip()
        if engine == "oracle" and re.match(r"(?i)^(WHENEVER|DEFINE|SET|PROMPT|SPOOL)\b", bare):
            continue
        if engine == "mssql" and bare.startswith(":"):
            continue
        if bare.startswith("--"):
            continue
        kept.append(line)
    script = "\n".join(kept)
    if engine == "mssql":
        parts = re.split(r"(?im)^\s*GO\s*$", script)
    else:
        # PL/SQL blocks end with a line holding only "/", plain statements with ";".
        parts = []
        for chunk in re.split(r"(?m)^\s*/\s*$", script):
            if re.search(r"(?i)\b(BEGIN|DECLARE)\b", chunk):
                parts.append(chunk)
            else:
                parts.extend(chunk.split(";"))
    return [p.strip() for p in parts if p.strip()]


def connect(engine: str):  # type: ignore[no-untyped-def]
    host, port = os.environ["SIGNET_DB_HOST"], int(os.environ["SIGNET_DB_PORT"])
    user, password = os.environ["SIGNET_DB_ADMIN_USER"], os.environ["SIGNET_DB_ADMIN_PASSWORD"]
    service = os.environ.get("SIGNET_DB_SERVICE", "")
    if engine == "oracle":
        import oracledb  # thin mode: no Instant Client

        return oracledb.connect(user=user, password=password, host=host, port=port,
                                service_name=service)
    import pymssql

    return pymssql.connect(server=host, port=port, user=user, password=password,
                           database=service or "master", autocommit=True)


def main() -> int:
    engine, path = sys.argv[1], sys.argv[2]
    if engine not in LOGIN_EXISTS:
        raise SystemExit(f"unsupported engine {engine!r}: use oracle or mssql")
    variables = json.loads(os.environ["SIGNET_DB_VARIABLES"])
    with open(path, encoding="utf-8") as handle:
        script = substitute(engine, handle.read(), variables)
    connection = connect(engine)
    cursor = connection.cursor()
    cursor.execute(LOGIN_EXISTS[engine], (variables["signet_user"],))
    if cursor.fetchone():
        print("present: login", variables["signet_user"], "exists; bootstrap not run")
        return 0
    for statement in statements(engine, script):
        cursor.execute(statement)
    connection.commit()
    print("bootstrapped: login", variables["signet_user"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
