"""Print the full schema DDL for one engine, generated from the migrations (Alembic offline).

python -m signet.store.ddl postgresql|oracle|mssql|sqlite > db/<engine>/schema.sql"""

from __future__ import annotations

import io
import re
import sys

from alembic import command

from signet.store.db import alembic_config

URLS = {
    "postgresql": "postgresql+psycopg://",
    "oracle": "oracle+oracledb://",
    "mssql": "mssql+pymssql://",
    "sqlite": "sqlite://",
}


def schema_sql(engine: str) -> str:
    if engine not in URLS:
        raise SystemExit(f"unknown engine {engine!r}; use one of {', '.join(URLS)}")
    buffer = io.StringIO()
    cfg = alembic_config(URLS[engine])
    cfg.output_buffer = buffer
    command.upgrade(cfg, "head", sql=True)
    # Drop the "Running upgrade" noise that carries nothing but the revision ids.
    text = re.sub(r"(?m)^-- Running upgrade.*\n", "", buffer.getvalue())
    header = (
        f"-- Signet schema for {engine}, generated from the Alembic migrations by\n"
        f"-- `make ddl` (python -m signet.store.ddl {engine}). Do not edit by hand.\n\n"
    )
    return header + text


if __name__ == "__main__":
    sys.stdout.write(schema_sql(sys.argv[1] if len(sys.argv) > 1 else ""))
