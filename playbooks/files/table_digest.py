#!/usr/bin/env python3
"""Row count and content hash of every user table, as JSON, for comparing two copies.

The hash is the sum of a 64-bit hash of each row's text (hashtextextended), so it
does not depend on row order and needs no memory beyond one row: two copies with
the same rows have the same count and hash. Connects over the unix socket as the
postgres user (peer authentication), one database after another.

    table_digest.py --socket /run/postgresql --databases app,postgres
    table_digest.py --socket /run/postgresql --databases app --tables public.orders

With --tables, only those tables (schema-qualified, in every database named):
hashing a whole database reads all of it, which a caller that compares a few
tables need not wait for.
"""

from __future__ import annotations

import argparse
import json

import psycopg
from psycopg import sql

TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2
"""


def digest(socket: str, dbname: str,
           only: set[str] | None = None) -> dict[str, dict[str, int | str]]:
    out: dict[str, dict[str, int | str]] = {}
    with psycopg.connect(host=socket, dbname=dbname, user="postgres") as conn:
        conn.read_only = True
        for schema, table in conn.execute(TABLES).fetchall():
            if only is not None and f"{schema}.{table}" not in only:
                continue
            ident = sql.Identifier(schema, table)
            rows, total = conn.execute(sql.SQL(
                "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text "
                "FROM {} AS t").format(ident)).fetchone()
            out[f"{schema}.{table}"] = {"rows": rows, "hash": total}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="/run/postgresql")
    parser.add_argument("--databases", required=True, help="comma-separated names")
    parser.add_argument("--tables", default="",
                        help="comma-separated schema.table names: only these (default: all)")
    args = parser.parse_args()
    only = {t for t in args.tables.split(",") if t} or None
    print(json.dumps({db: digest(args.socket, db, only)
                      for db in args.databases.split(",") if db}))


if __name__ == "__main__":
    main()
