"""The lab's database as lab.status and lab.chaos see it: roles, streaming and lag
of every region's node (through the same probe runbooks use), and the
`corrupt --table T [--how drop|update]` chaos (drop a table on the primary, or
overwrite a column in every row, in one transaction whose XID is printed).

Registered with the controller and chaos by ``register()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drkit.errors import LabError
from drkit.fsutil import atomic_write_json
from drkit.lab import chaos, controller, paths


def _context() -> Any:
    from drkit.env import load_environment
    from drkit.project import find_project
    from drkit.registry import StepContext

    project = find_project()
    env = load_environment(project, str(project.root / controller.INVENTORY_DIR))
    return StepContext(env=env, project=project, run_dir=project.state_dir)


def topology() -> dict[str, Any]:
    """postgres.topology of the lab estate."""
    from drkit.checks.estate import db_secret, topology_probe

    ctx = _context()
    return topology_probe(ctx, db_secret(ctx.env))


def status_probe(lab: paths.LabPaths, view: dict) -> dict[str, Any]:
    """One line per database node for lab.status: zone, role, host, streaming, sync
    state, lag."""
    topo = topology()
    rows = {}
    for key, node in topo["nodes"].items():
        rows[key] = {
            "zone": node.get("zone"), "role": node.get("role") or "unreachable",
            "host": node.get("host"),
            "streaming": node.get("streaming") if node.get("role") == "replica" else None,
            "sync_state": node.get("sync_state"), "lag_bytes": node.get("lag_bytes"),
            "replay_delay_s": node.get("replay_delay_s"), "timeline": node.get("timeline"),
            "error": node.get("error"),
        }
    return {"primary_node": topo["primary_node"], "primary_region": topo["primary_region"],
            "dns_primary_node": topo["dns_primary_node"],
            "dns_primary_region": topo["dns_primary_region"], "nodes": rows}


def primary_dsn() -> tuple[str, dict[str, Any]]:
    """Conninfo of the current primary (and the topology it was found in)."""
    from drkit.checks.estate import dsn

    topo = topology()
    if not topo["primary_host"]:
        raise RuntimeError("no reachable primary")
    return dsn(topo["primary_host"], credentials()), topo


#: ``corrupt --how``: drop the table, or overwrite one column in every row.
CORRUPT_HOW = ("drop", "update")


def _overwrite_sql(conn: Any, table: str) -> tuple[str, str]:
    """An UPDATE overwriting the first column that is not part of the primary key
    (nor generated) in every row of ``table``, with a value of its type; the column."""
    row = conn.execute(
        "SELECT a.attname, t.typcategory FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " AND a.attgenerated = '' AND a.attidentity = ''"
        " AND a.attnum <> ALL (coalesce((SELECT conkey FROM pg_constraint WHERE conrelid ="
        " %s::regclass AND contype = 'p'), '{}')) ORDER BY a.attnum LIMIT 1",
        (table, table)).fetchone()
    if row is None:
        raise LabError(f"table {table} has no column outside its primary key to overwrite",
                       hint="use --how drop, or a table with a data column")
    column, category = row
    value = {"N": "0", "S": "'corrupted'", "D": "'epoch'", "B": f'NOT "{column}"'}.get(
        category, "NULL")
    return f'UPDATE {table} SET "{column}" = {value}', column


def corrupt(lab: paths.LabPaths, table: str, how: str = "drop", **_: Any) -> list[str]:
    """Damage ``table`` on the current primary in one transaction (a data-corruption
    drill): drop it, or overwrite a column in every row. What an operator needs to
    recover from it is printed and appended to ``<lab>/corruption.json``: the
    damaging transaction's id (--before-xid), the WAL position just before it
    (--before-lsn) and the time just before it (--before)."""
    import psycopg

    if how not in CORRUPT_HOW:
        raise LabError(f"corrupt --how {how!r}: not a kind of damage",
                       hint=f"use one of: {', '.join(CORRUPT_HOW)}")
    conninfo, topo = primary_dsn()
    quoted = '"' + table + '"'  # a plain name (chaos.check_target): quoting is enough
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (quoted,)).fetchone()[0] is None:
            raise LabError(f"no table {table} on the primary {topo['primary_host']}",
                           hint="name a table that exists (e.g. drkit_canary)")
        before_lsn, before_time = conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text, clock_timestamp()").fetchone()
        column = ""
        with conn.transaction():
            xid = int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
            if how == "drop":
                conn.execute(f"DROP TABLE {quoted}")
                rows = None
            else:
                sql, column = _overwrite_sql(conn, quoted)
                rows = conn.execute(sql).rowcount
        after_lsn, after_time = conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text, clock_timestamp()").fetchone()
    record = {"table": table, "how": how, "column": column or None, "rows": rows,
              "xid": xid % 2**32, "xid8": xid, "primary": topo["primary_host"],
              "region": topo["primary_region"], "before_lsn": before_lsn,
              "after_lsn": after_lsn, "before_time": before_time.isoformat(),
              "committed_by": after_time.isoformat()}
    log = lab.root / "corruption.json"
    history = json.loads(log.read_text()) if log.exists() else []
    atomic_write_json(log, [*history, record])
    what = (f"dropped table {table}" if how == "drop" else
            f"overwrote column {column} of {table} in every row ({rows} rows)")
    return [f"{what} on the primary {topo['primary_host']} ({topo['primary_node']}) "
            f"in transaction {record['xid']}",
            f"  damaging XID {record['xid']}, committed by {record['committed_by']}, WAL "
            f"{before_lsn} .. {after_lsn}",
            f"  recover: invoke recover-corruption --before-xid {record['xid']} --table {table}"
            f" (or --before-lsn {before_lsn}, --before {record['before_time']})",
            f"  recorded in {log}"]


def register() -> None:
    controller.register_status_probe("postgres", status_probe)
    chaos.register_corrupt_hook("postgres", corrupt)


def credentials() -> dict[str, Any]:
    """The estate's database credentials (from any region whose Secrets Manager answers)."""
    from drkit.checks.estate import db_credentials, db_secret

    ctx = _context()
    return db_credentials(ctx, db_secret(ctx.env), sorted(ctx.env.regions))


def canary_config(out: Path, *, rate: float, duration_s: float | None) -> Any:
    """A canary writing through db.<zone> with the estate's credentials."""
    from drkit.lab.canary import CanaryConfig

    creds = credentials()
    dns = _context().env.settings.get("dns") or {}
    return CanaryConfig(name=f"db.{dns.get('zone', 'lab.internal')}", out=Path(out), rate=rate,
                        duration_s=duration_s, resolver=dns.get("resolver"),
                        port=int(creds.get("port", 5432)), dbname=creds.get("dbname", "app"),
                        user=creds["username"], password=creds["password"])


def canary_report(out: Path) -> dict[str, Any]:
    """Compare a canary run with the rows on the current primary: lost writes,
    write unavailability (``write_unavailable_s``, the longest time without an
    acknowledgement) and failing time (``failing_s``); see drkit.lab.canary."""
    from drkit.lab.canary import report

    return report(out, primary_dsn()[0])
