"""Copy tables from a restored copy of the database back into the live primary.

RB-DR-004's surgical recovery: the copy (a scratch host restored to just
before the damage) holds the good version of each named table; the primary
holds every other table's later writes, which must stay. In ONE transaction on
the primary, for each table:

- still there (damaged rows): its rows are kept as ``<table>_corrupted_<run>``
  (CREATE TABLE AS), then it is emptied (TRUNCATE) and refilled from the copy,
  so the table keeps its identity: indexes, constraints, grants, dependent
  views, owned sequences (which are not moved back: the primary's are ahead);
- gone (dropped): its definition comes from the copy (pg_dump --schema-only,
  with its owned sequences, set to the copy's values), then its rows;
- then its row count and content hash must equal the copy's, else everything
  rolls back.

A row in ``drkit_recovered_tables`` per table, in the same transaction, says
which run copied it: a re-run (``--resume`` after a kill) finds it and copies
nothing again; a run killed before the commit left nothing (the server rolls
back a transaction whose client is gone). The primary refuses client writes
while this runs (RB-DR-004's containment); this session alone writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from drkit.checks.corruption import digest, kept_name
from drkit.checks.estate import db_credentials, dsn
from drkit.registry import StepContext, action

LEDGER = """
CREATE TABLE IF NOT EXISTS public.drkit_recovered_tables (
    run_id text NOT NULL, table_name text NOT NULL, kept_as text, rows bigint NOT NULL,
    recovery_point text NOT NULL, recovered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, table_name))
"""

def pg_dump_path() -> str:
    """pg_dump on this machine: PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_dump")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not candidates:
        raise RuntimeError("pg_dump is not installed here (install postgresql-client): it "
                           "reads a dropped table's definition from the restored copy")
    return str(candidates[-1])


def table_definition(conninfo: dict[str, Any], table: str) -> str:
    """The table's DDL (with its owned sequences, indexes, constraints, grants) from the
    copy, as pg_dump writes it, without psql's meta-commands."""
    env = {**os.environ, "PGPASSWORD": str(conninfo["password"])}
    out = subprocess.run(
        [pg_dump_path(), "--schema-only", "--no-password", "-h", conninfo["host"],
         "-p", str(conninfo["port"]), "-U", conninfo["user"], "-d", conninfo["dbname"],
         "-t", f'public."{table}"'], capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"pg_dump of {table} from the copy failed: {out.stderr.strip()[-400:]}")
    return "\n".join(line for line in out.stdout.splitlines() if not line.startswith("\\"))


def exists(conn: psycopg.Connection[Any], table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'public."{table}"',)).fetchone()[0]


def owned_sequences(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " WHERE d.refobjid = to_regclass(%s) AND d.deptype IN ('a', 'i')",
        (f'public."{table}"',)).fetchall()]


def copy_rows(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], table: str) -> None:
    """Stream the table's rows from ``src`` into ``dst`` (binary COPY, no temp file)."""
    ident = sql.Identifier("public", table)
    with src.cursor().copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(ident)) as out, \
            dst.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(ident)) as into:
        for block in out:
            into.write(block)


def copy_tables(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], tables: list[str],
                *, run_id: str, point: str, source_conninfo: dict[str, Any]) -> dict[str, Any]:
    """The copy itself, on open connections (``dst`` not in autocommit: one transaction)."""
    dst.execute(LEDGER)
    done = dict(dst.execute(
        "SELECT table_name, kept_as FROM public.drkit_recovered_tables WHERE run_id = %s",
        (run_id,)).fetchall())
    dst.rollback()
    if done:
        missing = [t for t in tables if t not in done]
        if missing:  # one transaction wrote them all, or none: this cannot happen
            raise RuntimeError(f"run {run_id} copied {sorted(done)} but not {missing}")
        return {"copied": {}, "already": done,
                "summary": f"already copied by this run: {', '.join(sorted(done))}"}
    report: dict[str, dict[str, Any]] = {}
    with dst.transaction():
        dst.execute(LEDGER)
        for table in tables:
            if not exists(src, table):
                raise RuntimeError(f"table {table} is not in the copy restored to {point}: "
                                   "it did not exist then; nothing was replaced")
            kept = None
            if exists(dst, table):
                kept = kept_name(table, run_id)
                dst.execute(sql.SQL("CREATE TABLE {} AS TABLE {}").format(
                    sql.Identifier("public", kept), sql.Identifier("public", table)))
                dst.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier("public", table)))
            else:
                dst.execute(table_definition(source_conninfo, table))
            copy_rows(src, dst, table)
            if kept is None:  # a recreated table's sequences continue where the copy's were
                for seq in owned_sequences(dst, table):
                    last, called = src.execute(sql.SQL(
                        "SELECT last_value, is_called FROM {}").format(
                        sql.Identifier("public", seq))).fetchone()
                    dst.execute("SELECT setval(%s, %s, %s)", (f'public."{seq}"', last, called))
            want, got = digest(src, table), digest(dst, table)
            if want != got:
                raise RuntimeError(f"table {table}: {got[0]} rows (hash {got[1]}) after the copy, "
                                   f"the copy holds {want[0]} (hash {want[1]}); rolled back")
            dst.execute("INSERT INTO public.drkit_recovered_tables (run_id, table_name, kept_as,"
                        " rows, recovery_point) VALUES (%s, %s, %s, %s, %s)",
                        (run_id, table, kept, want[0], point))
            report[table] = {"rows": want[0], "hash": want[1], "kept_as": kept,
                             "recreated": kept is None}
    return {"copied": report, "already": {},
            "summary": "; ".join(f"{t}: {r['rows']} rows from the copy"
                                 + (f", damaged rows kept as {r['kept_as']}" if r["kept_as"]
                                    else " (it had been dropped: recreated)")
                                 for t, r in report.items())}


@action("postgres.copy_tables")
def copy_tables_action(ctx: StepContext, source: str, target: str, tables: list[str],
                       secret: str, run_id: str, point: str) -> dict[str, Any]:
    """Copy ``tables`` from the restored copy at ``source`` into the primary at
    ``target`` in one transaction, the damaged ones kept (module docstring)."""
    creds = db_credentials(ctx, secret, sorted(ctx.env.regions))
    source_conninfo = {"host": source, "port": int(creds.get("port", 5432)),
                       "user": creds["username"], "password": creds["password"],
                       "dbname": creds.get("dbname", "postgres")}
    if ctx.dry_run:
        return {"summary": f"would copy {', '.join(tables)} from the copy at {source} into the "
                           f"primary {target} in one transaction, each damaged one kept as "
                           + ", ".join(kept_name(t, run_id) for t in tables)}
    with psycopg.connect(dsn(source, creds), connect_timeout=10, autocommit=True) as src, \
            psycopg.connect(dsn(target, creds), connect_timeout=10,
                            options="-c default_transaction_read_only=off") as dst:
        ctx.progress(f"copying {', '.join(tables)} from {source} into {target}")
        result = copy_tables(src, dst, tables, run_id=run_id, point=point,
                             source_conninfo=source_conninfo)
    ctx.decide(result["summary"])
    # A re-run that found the tables copied names what the first one kept.
    kept = [r["kept_as"] for r in result["copied"].values() if r["kept_as"]]
    return {**result, "kept": kept + sorted(k for k in result["already"].values() if k)}
