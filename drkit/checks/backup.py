"""Probes of the backups: what each pgBackRest repository holds (read from the
buckets through the estate's endpoint) and which backup a restore would use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drkit import backups
from drkit.checks.estate import db_secret, topology_probe
from drkit.checks.local import tcp_probe
from drkit.checks.postgres import lag_bytes
from drkit.registry import StepContext, probe

#: A standby with more WAL received but not yet replayed is not backed up from.
MAX_REPLAY_BACKLOG = 16 * 2**20


def _states(ctx: StepContext) -> list[backups.RepositoryState]:
    return [backups.read_repository(ctx.env, repo)
            for repo in backups.repositories(ctx.env.settings)]


@probe("backup.repositories")
def repositories_probe(ctx: StepContext) -> dict[str, Any]:
    """Every repository with its backups (label, type, end, stop LSN, sizes, age)."""
    now = datetime.now(UTC)
    states = [s.as_dict(now) for s in _states(ctx)]
    newest = [b["stop"] for s in states for b in s["backups"]]
    return {"repositories": states, "newest": max(newest) if newest else None,
            "unreachable": [s["region"] for s in states if not s["reachable"]]}


def choose_source(topo: dict[str, Any], *, tls: bool,
                  max_backlog: int = MAX_REPLAY_BACKLOG) -> dict[str, Any]:
    """Where a backup runs, from the estate's topology (``postgres.topology``).

    A healthy streaming standby when there is one, so the primary is not loaded
    (backup-standby needs the primary's pgBackRest TLS server: ``tls``). Healthy:
    answers, in recovery, its WAL receiver streaming, at most ``max_backlog`` bytes
    received but not replayed. An asynchronous standby first (the primary's commits
    wait for a synchronous one's flushes, and a backup's reads would slow them),
    then by region, so the choice is stable. Else the primary, with why. ``problem``
    when there is not exactly one primary."""
    nodes = topo.get("nodes") or {}
    primaries = [n for n in nodes.values() if n.get("role") == "primary"]
    if len(primaries) != 1:
        named = ", ".join(f"{n['region']} ({n.get('host')})" for n in primaries) or "none"
        return {"ok": False, "problem": (
            f"{len(primaries)} database nodes answered as primary ({named}); a backup needs "
            "exactly one. Look at the estate's topology first (`drkit lab.status` in the lab)")}
    primary = primaries[0]
    synchronous = {s.get("application_name") for s in primary.get("senders") or []
                   if s.get("sync_state") in ("sync", "quorum")}
    healthy, unfit = [], []
    for key, n in sorted(nodes.items()):  # node keys: the region for a region's first
        if n is primary:
            continue
        backlog = lag_bytes(n.get("receive_lsn"), n.get("replay_lsn")) or 0
        receiver = (n.get("receiver") or {}).get("status")
        if not n.get("reachable"):
            unfit.append(f"{key} ({n.get('host') or 'no host'}) does not answer")
        elif not n.get("streaming"):
            unfit.append(f"{key} ({n['host']}) WAL receiver {receiver or 'not running'}")
        elif backlog > max_backlog:
            unfit.append(f"{key} ({n['host']}) {backlog} bytes not replayed > {max_backlog}")
        else:
            healthy.append({"key": key, "region": n["region"], "host": n["host"],
                            "instance_id": n.get("instance_id"), "backlog": backlog,
                            "synchronous": n["name"] in synchronous})
    healthy.sort(key=lambda n: (n["synchronous"], n["key"]))
    chosen = {"region": primary["region"], "host": primary["host"],
              "instance_id": primary.get("instance_id")}
    if not tls:
        why = "drkit.backup.tls is not set (no TLS server for a standby to reach the primary)"
    elif not healthy:
        why = "no healthy standby: " + ("; ".join(unfit) or "(there is none)")
    else:
        why = ""
    from_standby = tls and bool(healthy)
    source = healthy[0] if from_standby else {**chosen, "backlog": 0, "synchronous": False}
    return {"ok": True, "problem": "", "primary": chosen, "source": source,
            "from_standby": from_standby, "why_primary": why}


@probe("backup.source")
def source_probe(ctx: StepContext, max_backlog: int = MAX_REPLAY_BACKLOG) -> dict[str, Any]:
    """The node a backup runs on, and the primary it starts and stops on
    (``choose_source`` over ``postgres.topology``, asked from here in well under a
    second rather than by a play on every node)."""
    topo = topology_probe(ctx, secret=db_secret(ctx.env))
    tls = (ctx.env.settings.get("backup") or {}).get("tls") or {}
    choice = choose_source(topo, tls=bool(tls), max_backlog=int(max_backlog))
    # The play starts the primary's TLS server only when it does not answer (a
    # host that rebooted lost it): one connection less on a backup's path.
    choice["primary_tls_answers"] = bool(choice.get("from_standby")) and tcp_probe(
        ctx, choice["primary"]["host"], int(tls.get("port", 8432)), timeout=1.0)["open"]
    return choice


@probe("backup.restore_plan")
def restore_plan_probe(ctx: StepContext, region: str = "", label: str = "latest",
                       target_time: str = "", prefer_region: str = "") -> dict[str, Any]:
    """The repository and backup set a restore would use, or every reason it cannot
    (``prefer_region``: that region's repository first, when it has one)."""
    when = datetime.fromisoformat(target_time.replace("Z", "+00:00")) if target_time else None
    if when and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    plan = backups.plan_restore(_states(ctx), region=region, label=label or "latest",
                                target_time=when, now=datetime.now(UTC),
                                prefer_region=prefer_region)
    for line in plan.decisions:
        ctx.decide(line)
    timeline = None
    if plan.repo is not None:
        repo = backups.repositories(ctx.env.settings)[plan.repo - 1]
        try:
            timeline = backups.last_archived_timeline(
                ctx.env.client("s3", repo.cloud_region), repo)
        except Exception as exc:  # without it a restore follows PostgreSQL's default
            ctx.decide(f"the last archived timeline could not be read ({type(exc).__name__}); "
                       "a restore with no node to ask follows PostgreSQL's default")
    return {"repo": plan.repo, "region": plan.region, "label": plan.label,
            # A restore with no node left to ask follows this history (RB-DR-003/007).
            "archived_timeline": timeline or "",
            "target_time": plan.target_time, "backup": plan.backup,
            "fallbacks": plan.fallbacks, "problems": plan.problems, "ok": not plan.problems}


def _parse_pg_time(text: str) -> datetime | None:
    """A PostgreSQL timestamp (``2026-12-03 07:30:01.123456+00``) or an ISO 8601 time
    (``2026-12-03T07:30:01Z``) as a datetime; None for ''."""
    text = (text or "").strip()
    if not text:
        return None
    if len(text) > 3 and text[-3] in "+-" and text[-2:].isdigit():
        text += ":00"
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@probe("backup.restored_copy")
def restored_copy_probe(ctx: StepContext, copy: dict[str, Any], reference_time: str,
                        target_time: str = "", backup_end: str = "") -> dict[str, Any]:
    """Whether a restored copy passed verification (pg_amcheck, data checksums; the
    restore playbook's report in ``copy``), and how far it is behind the point asked
    for: the reference (the target time, else when the restore ran) minus the last
    transaction the copy replayed. That is the RPO a real loss restored this way
    would have had. ``backup_end`` (the restored backup's end, when the caller
    knows it) is the floor: the copy holds every commit before it, also when no
    transaction was replayed after it (nothing archived since the backup)."""
    for line in copy.get("fallbacks") or []:
        ctx.decide(f"restore fell back: {line}")
    problems = []
    if str(copy.get("amcheck_ok")).lower() != "true":
        problems.append("pg_amcheck found corruption: "
                        + " / ".join(copy.get("amcheck_tail") or ["(no output)"]))
    if copy.get("data_checksums") != "on":
        problems.append(f"data checksums are {copy.get('data_checksums')!r}, not on")
    replayed = _parse_pg_time(str(copy.get("last_commit") or ""))
    floor = _parse_pg_time(backup_end)
    last = max((t for t in (replayed, floor) if t is not None), default=None)
    ref = _parse_pg_time(target_time or reference_time)
    seconds = None if last is None or ref is None else max(0.0, (ref - last).total_seconds())
    tables = {f"{db}/{name}": t.get("rows") for db, per_db in (copy.get("tables") or {}).items()
              for name, t in per_db.items()}
    return {"ok": not problems, "problems": problems, "tables": tables,
            "last_commit": last.isoformat() if last else None,
            "reference_time": ref.isoformat() if ref else None, "seconds": seconds,
            "rpo": {"seconds": seconds, "lost_writes": None,
                    "detail": {"evidence": ("the last transaction the restored copy replayed"
                                            if last is replayed else "the restored backup's end"
                                            " (no transaction replayed after it)"),
                               "last_commit": last.isoformat() if last else None,
                               "reference": "target time" if target_time else "restore time",
                               "reference_time": ref.isoformat() if ref else None,
                               "lsn": copy.get("lsn"), "restored": copy.get("restored")}}}


@probe("backup.verify_results")
def verify_results_probe(ctx: StepContext, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One line per damaged repository from pgBackRest verify's results (the
    playbook's ``pgbackrest_verify_results``), naming each bad object."""
    bad = [r for r in results or [] if not r.get("ok")]
    summary = "; ".join(
        f"repo{r.get('repo')} ({r.get('repo_name')}) is damaged: "
        + (", ".join(r.get("problems") or []) or "verify failed") for r in bad)
    return {"ok": bool(results) and not bad, "damaged": [r.get("repo_name") for r in bad],
            "summary": summary or ("no repository was verified" if not results else "intact")}


@probe("backup.wal_archived")
def wal_archived_probe(ctx: StepContext, outputs: dict[str, Any]) -> dict[str, Any]:
    """Whether the primary archived its current WAL segment before a restore
    (archive-now's report), as a decision. Best effort: with the primary cut off a
    restore goes on from what was archived before, and says so; ``ok`` is whether
    the check itself could read the report."""
    reports = [f["archive"] for f in ((outputs or {}).get("facts") or {}).values()
               if isinstance(f, dict) and isinstance(f.get("archive"), dict)]
    if not reports:
        return {"ok": False, "archived": False,
                "why": "archive-now reported nothing (did the playbook run?)"}
    report = reports[0]
    archived = str(report.get("archived")).lower() == "true"
    if archived:
        ctx.decide(f"the primary ({report.get('archived_by')}) archived its current WAL "
                   "segment: the archive reaches now")
    else:
        ctx.decide("WARNING: the newest WAL could not be archived: "
                   f"{' '.join(str(report.get('why') or 'no reason given').split())}; "
                   "the restore goes on from what was archived before (the run's RPO "
                   "says how far behind that is)")
    return {"ok": True, "archived": archived, "archived_by": report.get("archived_by") or None,
            "why": report.get("why") or None}
