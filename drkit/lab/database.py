"""The lab's database as lab.status and lab.chaos see it: roles, streaming and lag
of every region's node (through the same probe runbooks use), and the
`corrupt --table` chaos (drop a table on the primary).

Registered with the controller and chaos by ``register()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.lab import chaos, controller, paths

DB_SECRET = "drkit/{estate}/REGION/db-credentials"


def _context() -> Any:
    from drkit.env import load_environment
    from drkit.project import find_project
    from drkit.registry import StepContext

    project = find_project()
    env = load_environment(project, str(project.root / controller.INVENTORY_DIR))
    return StepContext(env=env, project=project, run_dir=project.state_dir)


def topology() -> dict[str, Any]:
    """postgres.topology of the lab estate."""
    from drkit.checks.estate import topology_probe

    ctx = _context()
    return topology_probe(ctx, DB_SECRET.format(estate=ctx.env.settings.get("estate", "lab")))


def status_probe(lab: paths.LabPaths, view: dict) -> dict[str, Any]:
    """One line per region for lab.status: role, host, streaming, sync state, lag."""
    topo = topology()
    rows = {}
    for region, node in topo["nodes"].items():
        rows[region] = {
            "role": node.get("role") or "unreachable", "host": node.get("host"),
            "streaming": node.get("streaming") if node.get("role") == "replica" else None,
            "sync_state": node.get("sync_state"), "lag_bytes": node.get("lag_bytes"),
            "replay_delay_s": node.get("replay_delay_s"), "timeline": node.get("timeline"),
            "error": node.get("error"),
        }
    return {"primary_region": topo["primary_region"],
            "dns_primary_region": topo["dns_primary_region"], "nodes": rows}


def primary_dsn() -> tuple[str, dict[str, Any]]:
    """Conninfo of the current primary (and the topology it was found in)."""
    from drkit.checks.estate import dsn

    topo = topology()
    if not topo["primary_host"]:
        raise RuntimeError("no reachable primary")
    return dsn(topo["primary_host"], credentials()), topo


def corrupt(lab: paths.LabPaths, table: str, **_: Any) -> list[str]:
    """Drop ``table`` on the current primary (a data-corruption drill)."""
    import psycopg

    conninfo, topo = primary_dsn()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')  # a drill: the table is named
    return [f"dropped table {table} on the primary {topo['primary_host']} "
            f"({topo['primary_region']})"]


def register() -> None:
    controller.register_status_probe("postgres", status_probe)
    chaos.register_corrupt_hook("postgres", corrupt)


def credentials() -> dict[str, Any]:
    """The estate's database credentials (from any region whose Secrets Manager answers)."""
    from drkit.checks.estate import db_credentials

    ctx = _context()
    estate = ctx.env.settings.get("estate", "lab")
    return db_credentials(ctx, DB_SECRET.format(estate=estate), sorted(ctx.env.regions))


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
