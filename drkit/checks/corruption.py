"""RB-DR-004 data corruption: the recovery point, what recovering to it loses and
what it replaces, decided before anything changes.

The operator names the point just *before* the damage: a transaction id (the
damaging transaction, excluded), a WAL position or a time. Whatever can be
checked without touching the estate is checked by ``assess_request`` (pure) over
what ``inspect`` reads from the primary and the repositories: the transaction
exists and committed, the point is neither in the future nor before the oldest
backup, every named table exists on the primary or was dropped (drkit's note of
dropped tables, playbooks/db-audit.yml). The CLI refuses a bad request with exit
2 from the same function, before a run starts.

Once writes are stopped, the WAL itself (playbooks/files/wal_scan.py over the
archived WAL) says where the point is exactly and what committed after it:
``recovery_point`` turns that into the restore target, the backup to restore and
the loss estimate the approval shows.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.sql

from drkit import backups
from drkit.checks.estate import db_credentials, dsn, topology_probe
from drkit.durations import format_duration
from drkit.errors import ConfigError
from drkit.registry import StepContext, probe

STRATEGIES = ("tables", "rewind")
_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: The suffix of a damaged table kept beside its restored version.
KEPT_SUFFIX = "_corrupted_"


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops, exclusive: just before transaction ``xid`` commits,
    just before WAL position ``lsn``, or just before ``time``."""

    kind: str  # xid | lsn | time
    value: str

    def describe(self) -> str:
        return {"xid": f"just before transaction {self.value} (excluded)",
                "lsn": f"just before WAL position {self.value}",
                "time": f"just before {self.value}"}[self.kind]

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def lsn_int(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def kept_name(table: str, run_id: str) -> str:
    """``<table>_corrupted_<run>`` (the run's time, lower case), within 63 bytes."""
    tag = run_id.split("-", 1)[0].lower()
    return f"{table[:63 - len(KEPT_SUFFIX) - len(tag)]}{KEPT_SUFFIX}{tag}"


def parse_request(*, before: str, before_xid: str, before_lsn: str, tables: list[str],
                  strategy: str, now: datetime) -> RecoveryTarget:
    """The recovery target the flags name, or a ConfigError listing every problem."""
    problems: list[str] = []
    given = [f for f, v in (("--before", before), ("--before-xid", before_xid),
                            ("--before-lsn", before_lsn)) if v]
    if len(given) > 1:
        problems.append(f"{' and '.join(given)} together: a recovery point is one of them")
    elif not given:
        problems.append("no recovery point: give --before TIME, --before-xid XID or "
                        "--before-lsn LSN (the damaging transaction's id is the surest; "
                        "`--dry-run --before <a time just after the damage> --table T` lists "
                        "the last transactions that touched T)")
    if strategy not in STRATEGIES:
        problems.append(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if strategy == "tables" and not tables:
        problems.append("--strategy tables needs --table (each damaged table, repeatable); "
                        "--strategy rewind takes the whole database back instead")
    for t in tables:
        if not _TABLE.match(t):
            problems.append(f"--table {t!r}: not a plain table name (letters, digits, _)")
        elif t.endswith(tuple(f"{KEPT_SUFFIX}{d}" for d in "0123456789")) or KEPT_SUFFIX in t:
            problems.append(f"--table {t}: a damaged table kept by an earlier recovery")
    target = None
    if before_xid:
        if not before_xid.isdigit() or not 3 <= int(before_xid) < 2**32:
            problems.append(f"--before-xid {before_xid!r}: a transaction id is a whole number "
                            "(3 to 4294967295), as `lab.chaos corrupt` or pg_waldump print it")
        else:
            target = RecoveryTarget("xid", str(int(before_xid)))
    if before_lsn:
        if not _LSN.match(before_lsn):
            problems.append(f"--before-lsn {before_lsn!r}: an LSN looks like 0/3000060")
        else:
            target = RecoveryTarget("lsn", before_lsn.upper())
    if before:
        try:
            when = datetime.fromisoformat(before.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"--before {before!r}: not an ISO-8601 time "
                            "(e.g. 2026-12-03T07:30:00Z)")
        else:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            if when > now:
                problems.append(f"--before {before}: in the future (it is "
                                f"{now:%Y-%m-%dT%H:%M:%SZ} now)")
            target = RecoveryTarget("time", when.astimezone(UTC).isoformat())
    if problems or target is None:
        raise ConfigError("recover-corruption: bad request", problems=problems or ["no target"],
                          hint="nothing was changed; `invoke recover-corruption --help`")
    return target


def assess_request(target: RecoveryTarget, tables: list[str], *, primary: dict[str, Any],
                   oldest_backup: dict[str, Any] | None, now: datetime) -> list[str]:
    """Every reason the request cannot be carried out, checked against the estate
    (``primary`` as ``inspect_primary`` reads it); empty when it can."""
    problems: list[str] = []
    if not primary.get("host"):
        return ["no database primary answers: recover-corruption works on a live primary "
                "(restore the service first: `invoke restore --into db`)"]
    if oldest_backup is None:
        problems.append("no backup in any repository: nothing to recover from "
                        "(take one with `invoke backup`; it only covers later damage)")
    status = primary.get("xid_status")
    if target.kind == "xid":
        if status == "future":
            problems.append(f"--before-xid {target.value}: no such transaction yet (the next "
                            f"transaction id is {primary.get('next_xid')})")
        elif status is None:
            problems.append(f"--before-xid {target.value}: no such transaction (too old for "
                            "the primary to know its status, or never assigned)")
        elif status == "aborted":
            problems.append(f"--before-xid {target.value}: that transaction rolled back, it "
                            "changed nothing; name the one that committed the damage")
        elif status == "in progress":
            problems.append(f"--before-xid {target.value}: that transaction is still running; "
                            "end it (pg_terminate_backend) and name it again")
        elif oldest_backup and primary.get("xid_committed_at"):
            committed = datetime.fromisoformat(primary["xid_committed_at"])
            stop = datetime.fromisoformat(oldest_backup["stop"])
            if committed < stop:
                problems.append(f"--before-xid {target.value}: committed at "
                                f"{committed:%Y-%m-%dT%H:%M:%SZ}, before the oldest backup ended "
                                f"({oldest_backup['label']} at {stop:%Y-%m-%dT%H:%M:%SZ}); no "
                                "backup can be restored to just before it")
    elif target.kind == "lsn":
        current = primary.get("current_lsn")
        if current and lsn_int(target.value) > lsn_int(current):
            problems.append(f"--before-lsn {target.value}: in the future (the primary's WAL is "
                            f"at {current})")
        elif oldest_backup and lsn_int(target.value) < lsn_int(oldest_backup["lsn_stop"]):
            problems.append(f"--before-lsn {target.value}: before the oldest backup ended "
                            f"({oldest_backup['label']} at {oldest_backup['lsn_stop']}); no "
                            "backup can be restored to it")
    elif target.kind == "time" and oldest_backup:
        when = datetime.fromisoformat(target.value)
        stop = datetime.fromisoformat(oldest_backup["stop"])
        if when < stop:
            problems.append(f"--before {target.value}: before the oldest backup ended "
                            f"({oldest_backup['label']} at {stop:%Y-%m-%dT%H:%M:%SZ}); no "
                            "backup can be restored to it")
    present = primary.get("tables") or {}
    dropped = primary.get("dropped") or {}
    for t in tables:
        if present.get(t) is None and not dropped.get(t):
            problems.append(f"--table {t}: no such table on the primary"
                            + (", and none of that name was dropped" if "dropped" in primary
                               else "") + " (names are case-sensitive, schema public)")
    return problems


def _xid8(conn: Any, xid: int) -> int:
    """The full (epoch-qualified) transaction id of 32-bit ``xid``: the latest one
    not after the next transaction id."""
    xmax = int(conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0])
    full = ((xmax >> 32) << 32) | xid
    return full - 2**32 if full > xmax and full >= 2**32 else full


def _commit_time(conn: Any, xid: int) -> str | None:
    """When transaction ``xid`` committed, if the server knows (track_commit_timestamp
    was on then, and its commit time is still kept); else None."""
    try:
        at = conn.execute("SELECT pg_xact_commit_timestamp(%s::text::xid)",
                          (str(xid),)).fetchone()[0]
    except psycopg.Error:  # off now, or older than the kept commit timestamps
        return None
    return at.astimezone(UTC).isoformat() if at else None


def inspect_primary(ctx: StepContext, secret: str, target: RecoveryTarget,
                    tables: list[str]) -> dict[str, Any]:
    """What the primary says about the request: the transaction's status, its WAL
    position, the named tables (file node, or dropped: by which transaction, when),
    and every user table's file node (for naming what the WAL says was lost)."""
    topo = topology_probe(ctx, secret)
    region, host, key = topo["primary_region"], topo["primary_host"], topo["primary_node"]
    out: dict[str, Any] = {"region": region, "host": host, "node": key,
                           "replicas": sorted(k for k in topo["nodes"] if k != key)}
    if not host:
        return out
    creds = db_credentials(ctx, secret, sorted(ctx.env.regions, key=lambda r: r != region))
    out["dbname"] = creds.get("dbname", "postgres")
    with psycopg.connect(dsn(host, creds), connect_timeout=5, autocommit=True) as conn:
        out["current_lsn"] = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        out["next_xid"] = int(conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0]) % 2**32
        if target.kind == "xid":
            full = _xid8(conn, int(target.value))
            try:
                status = conn.execute("SELECT pg_xact_status(%s::text::xid8)",
                                      (str(full),)).fetchone()[0]
            except psycopg.errors.InvalidParameterValue:
                status = "future"
            out["xid_status"] = status
            if status == "committed":
                out["xid_committed_at"] = _commit_time(conn, int(target.value))
        out["tables"] = {t: conn.execute("SELECT pg_relation_filenode(to_regclass(%s))",
                                         (f'public."{t}"',)).fetchone()[0] for t in tables}
        out["relnames"] = {str(node): name for name, node in conn.execute(
            "SELECT c.relname, pg_relation_filenode(c.oid) FROM pg_class c WHERE c.relkind = 'r'"
            " AND c.relnamespace = 'public'::regnamespace").fetchall() if node}
        try:
            rows = conn.execute(
                "SELECT table_name, xid::text, dropped_at FROM public.drkit_dropped_tables"
                " WHERE schema_name = 'public' AND table_name = ANY(%s) ORDER BY dropped_at",
                (tables,)).fetchall()
        except psycopg.errors.UndefinedTable:  # the estate does not note drops (no db-audit)
            pass
        else:
            out["dropped"] = {}
            for name, xid, at in rows:
                out["dropped"].setdefault(name, []).append(
                    {"xid": int(xid) % 2**32, "at": at.astimezone(UTC).isoformat()})
    return out


def oldest_backup(ctx: StepContext) -> tuple[dict[str, Any] | None, list[Any]]:
    """The oldest good backup in any repository (what bounds a recovery point) and
    every repository's state."""
    states = [backups.read_repository(ctx.env, r) for r in backups.repositories(ctx.env.settings)]
    good = [b for s in states for b in s.backups if not b.error]
    first = min(good, key=lambda b: b.stop) if good else None
    return (first.as_dict() if first else None), states


def check_request(ctx: StepContext, secret: str, target: RecoveryTarget,
                  tables: list[str]) -> dict[str, Any]:
    """``inspect_primary`` and the repositories, then ``assess_request``."""
    primary = inspect_primary(ctx, secret, target, tables)
    oldest, states = oldest_backup(ctx)
    scratch = backups.plan_restore(states, region="", label="latest", target_time=None,
                                   now=datetime.now(UTC))
    problems = assess_request(target, tables, primary=primary, oldest_backup=oldest,
                              now=datetime.now(UTC))
    relfilenodes = sorted({n for n in (primary.get("tables") or {}).values() if n})
    return {"ok": not problems, "problems": problems, "target": target.as_dict(),
            "target_text": target.describe(), "primary_region": primary.get("region"),
            "primary_node": primary.get("node"), "primary_host": primary.get("host"),
            "replicas": primary.get("replicas", []),
            "dbname": primary.get("dbname"),
            "tables": {t: {"relfilenode": (primary.get("tables") or {}).get(t),
                           "dropped": (primary.get("dropped") or {}).get(t, [])}
                       for t in tables},
            "relfilenodes": relfilenodes, "relnames": primary.get("relnames", {}),
            "oldest_backup": oldest, "scratch_region": scratch.region,
            "stop_lsn": oldest["lsn_start"] if oldest else "0/0"}


@probe("corruption.request")
def request_probe(ctx: StepContext, secret: str, kind: str, value: str,
                  tables: list[str] | None = None) -> dict[str, Any]:
    """The request checked against the primary and the repositories (the CLI
    refused it already if not; a run started otherwise is refused here)."""
    result = check_request(ctx, secret, RecoveryTarget(kind, value), list(tables or []))
    if result["primary_host"]:
        ctx.decide(f"recovering {result['target_text']} on the primary "
                   f"{result['primary_node']} ({result['primary_host']})")
    return result


def _names(by_node: dict[str, int], relnames: dict[str, str]) -> dict[str, int]:
    return {relnames[n]: c for n, c in sorted(by_node.items()) if n in relnames}


def recovery_point(scan: dict[str, Any], request: dict[str, Any], *, strategy: str,
                   states: list[Any], now: datetime, scratch_region: str = "") -> dict[str, Any]:
    """From the WAL scan: the exact point, the backup to restore, and the loss.

    The loss is what a restore to the point throws away, besides the damaging
    transaction itself: with ``rewind`` every later commit; with ``tables`` the
    later commits that touched the restored tables (the other tables keep theirs)."""
    problems: list[str] = []
    target = RecoveryTarget(**request["target"])
    scanned = scan.get("scanned") or {}
    if target.kind == "xid" and (scan.get("target") or {}).get("kind") == "abort":
        problems.append(f"transaction {target.value} rolled back: it changed nothing")
    if not scan.get("found"):
        problems.append(f"{target.describe()}: not in the WAL from {scanned.get('from_lsn')} to "
                        f"{scanned.get('to_lsn')} (timeline {scanned.get('timeline')}, from the "
                        f"oldest backup or the timeline's start on): the point is older than every "
                        "backup, or on an earlier timeline")
        return {"ok": False, "problems": problems}
    point = scan["point"]
    lost = scan["lost"]
    relnames = dict(request.get("relnames") or {})
    damaging = lost["damaging"]
    kept_until = (scan.get("last_kept") or {}).get("time")
    for t, info in request["tables"].items():
        # A dropped table comes back only if it was dropped after the point.
        if info["relfilenode"] is None and kept_until and not any(
                d["at"] >= kept_until or (target.kind == "xid" and d["xid"] == int(target.value))
                for d in info["dropped"]):
            problems.append(f"table {t} was dropped before the recovery point (at "
                            f"{', '.join(d['at'] for d in info['dropped'])}): the copy "
                            "would not hold it either; choose an earlier point")
    when = datetime.fromisoformat(point["time"])
    plan = backups.plan_restore(states, region="", label="latest", target_time=when, now=now)
    problems += plan.problems
    if scratch_region and plan.region and plan.region != scratch_region:
        problems.append(f"the backup to restore is in {plan.region}'s repository but the "
                        f"scratch host was made in {scratch_region}; run again")
    by_table = _names(lost["by_relfilenode"], relnames)
    damaging_tables = sorted(relnames.get(str(n), str(n)) for n in damaging["relfilenodes"]
                             if str(n) in relnames)
    # The damaging transaction is excluded on purpose: not a loss.
    others = max(0, lost["transactions"] - 1)
    named = list(request["tables"])
    if strategy == "tables":
        lost_writes = sum(by_table.get(t, 0) for t in named) - sum(
            1 for t in named if t in damaging_tables)
        scope = f"in {', '.join(named)}"
    else:
        lost_writes = others
        scope = "in the whole database"
    span = 0.0
    if lost_writes and lost.get("last"):
        span = max(0.0, (datetime.fromisoformat(lost["last"]) - when).total_seconds())
    help_lines = {relnames.get(n, n): rows
                  for n, rows in (scan.get("touched_before") or {}).items()}
    summary = (f"{lost_writes} committed transaction(s) {scope} after the point"
               + (f", over {format_duration(span)} up to {lost['last'][:23]}Z"
                  if lost_writes else "")
               + f" (all {lost['transactions']} commits after it, the damaging one included, "
               f"span {format_duration(lost['span_s'])})")
    out = {
        "ok": not problems, "problems": problems, "target": target.as_dict(),
        "point": point, "last_kept": scan.get("last_kept"),
        "restore": {"repo": plan.repo, "region": plan.region, "label": plan.label,
                    "fallbacks": plan.fallbacks,
                    "type": target.kind, "value": target.value},
        "loss": {"transactions": lost_writes, "span_s": round(span, 3), "summary": summary,
                 "after_point": lost["transactions"], "by_table": by_table,
                 "damaging_tables": damaging_tables},
        "touched_before": help_lines, "scanned": scanned,
        "decisions": plan.decisions,
    }
    return out


@probe("corruption.recovery_point")
def recovery_point_probe(ctx: StepContext, scan: dict[str, Any], request: dict[str, Any],
                         strategy: str, scratch_region: str = "") -> dict[str, Any]:
    """``recovery_point`` over the WAL scan the "wal" step reported."""
    _, states = oldest_backup(ctx)
    result = recovery_point(scan, request, strategy=strategy, states=states,
                            now=datetime.now(UTC), scratch_region=scratch_region)
    for line in result.get("decisions", []):
        ctx.decide(line)
    if result["ok"]:
        ctx.decide(f"recovery point {result['point']['lsn']} ({result['point']['time']}); "
                   f"loss: {result['loss']['summary']}")
    # The help the operator picks another point from (never used silently).
    for table, rows in (result.get("touched_before") or {}).items():
        ctx.decide(f"last transactions that touched {table} before the point: "
                   + (", ".join(f"XID {r['xid']} at {r['time'][:23]}" for r in rows)
                      or "none in the WAL read"))
    return result


@probe("corruption.copy_verified")
def copy_verified_probe(ctx: StepContext, copy: dict[str, Any], point_time: str,
                        started_at: str) -> dict[str, Any]:
    """backup.restored_copy (pg_amcheck, data checksums) without its RPO evidence:
    here the copy stops at the recovery point on purpose; what was lost is
    corruption.data_lost's to say."""
    from drkit.checks.backup import restored_copy_probe

    result = restored_copy_probe(ctx, copy, reference_time=started_at, target_time=point_time)
    result.pop("rpo", None)
    return result


@probe("corruption.data_lost")
def data_lost_probe(ctx: StepContext, point: dict[str, Any],
                    kept: list[str] | None = None) -> dict[str, Any]:
    """The RPO as the data actually lost: the transactions the recovery threw away
    (besides the damaging one), their count and time span, as RPO evidence; and
    the damaged data kept for forensics."""
    loss = point["loss"]
    kept = [k for k in (kept or []) if k]
    ctx.decide(f"data lost: {loss['summary']}; kept for forensics: "
               f"{', '.join(kept) or 'nothing (a dropped table has no damaged rows)'}")
    return {"ok": True, "loss": loss, "kept": kept,
            "rpo": {"seconds": loss["span_s"], "lost_writes": loss["transactions"],
                    "detail": {"point": point["point"], "by_table": loss["by_table"],
                               "summary": loss["summary"], "kept": kept}}}


DIGEST = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM {} AS t"


def digest(conn: Any, table: str) -> tuple[int, str]:
    """Row count and content hash of public.``table`` (as playbooks/files/table_digest.py)."""
    row = conn.execute(psycopg.sql.SQL(DIGEST).format(
        psycopg.sql.Identifier("public", table))).fetchone()
    return int(row[0]), str(row[1])


def compare_tables(copy: dict[str, tuple[int, str] | None],
                   primary: dict[str, tuple[int, str] | None]) -> list[str]:
    """Every table whose rows on the primary differ from the copy's (pure)."""
    problems = []
    for t, want in copy.items():
        got = primary.get(t)
        if want is None:
            problems.append(f"{t} is not in the copy")
        elif got is None:
            problems.append(f"{t} is not on the primary")
        elif got != want:
            problems.append(f"{t}: {got[0]} rows (hash {got[1]}) on the primary, {want[0]} "
                            f"(hash {want[1]}) in the copy")
    return problems


@probe("corruption.tables_match")
def tables_match_probe(ctx: StepContext, source: str, target: str, tables: list[str],
                       secret: str, amcheck: dict[str, Any] | None = None) -> dict[str, Any]:
    """The restored tables on the primary hold exactly the copy's rows (count and
    content hash), and pg_amcheck passed over them (``amcheck``: the verify step's)."""
    creds = db_credentials(ctx, secret, sorted(ctx.env.regions))
    found: dict[str, dict[str, tuple[int, str] | None]] = {}
    for where, host in (("copy", source), ("primary", target)):
        with psycopg.connect(dsn(host, creds), connect_timeout=10, autocommit=True) as conn:
            found[where] = {t: digest(conn, t) if conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f'public."{t}"',)).fetchone()[0] else None
                for t in tables}
    problems = compare_tables(found["copy"], found["primary"])
    if amcheck is not None and str(amcheck.get("amcheck_ok")).lower() != "true":
        problems.append("pg_amcheck found corruption: "
                        + " / ".join(amcheck.get("amcheck_tail") or []))
    return {"ok": not problems, "problems": problems,
            "tables": {t: {"rows": v[0], "hash": v[1]} if v else None
                       for t, v in found["primary"].items()}}
