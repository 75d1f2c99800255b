"""Probes of a key rotation (RB-DR-005): can every region take part, is the old
credential refused and the new one accepted by every endpoint, does every region
hold one current version, and what did the service see meanwhile (a canary)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from drkit.checks.aws import instances
from drkit.keys import rotation
from drkit.registry import StepContext, probe


def _secret_of(ctx: StepContext, key: str) -> str:
    return rotation.rotatable(ctx.env.settings)[key].source.secret or ""


@probe("keys.regions_answer")
def regions_answer_probe(ctx: StepContext, keys: list[str]) -> dict[str, Any]:
    """Whether every region's Secrets Manager answers for each key kept there: a
    rotation that cannot reach a region would leave it serving the old value."""
    down: dict[str, str] = {}
    for key in keys:
        secret = _secret_of(ctx, key) if key in rotation.rotatable(ctx.env.settings) else ""
        if secret:
            for region, why in rotation.answering(ctx.env, secret).items():
                down.setdefault(region, why)
    return {"ok": not down, "down": down,
            "answering": [r for r in ctx.env.regions_primary_first() if r not in down],
            "summary": ("every region's Secrets Manager answers" if not down else
                        "Secrets Manager does not answer in "
                        + ", ".join(f"{r} ({why})" for r, why in down.items()))}


def try_login(host: str, user: str, password: str, *, dbname: str = "postgres",
              timeout: float = 3.0) -> str:
    """``accepted``, ``refused`` (password authentication failed) or ``error: ...``."""
    conninfo = make_conninfo(host=host, port="5432", user=user, password=password,
                             dbname=dbname, connect_timeout=str(int(timeout)))
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return "accepted"
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text:
            return "refused"
        return "error: " + (text.strip().splitlines() or ["?"])[-1][:160]


@probe("keys.postgres_logins")
def postgres_logins_probe(ctx: StepContext, key: str, old_versions: dict[str, str],
                          replication_user: str = "replicator") -> dict[str, Any]:
    """Every running db node asked to log in each role of the credentials secret
    (the login role; the replication role, which uses the same password unless the
    secret has its own replication_password) with the old value and the new one:
    ``ok`` when the old is refused everywhere and the new accepted everywhere."""
    secret = _secret_of(ctx, key)
    regions = ctx.env.regions_primary_first()
    old_version = next((v for v in old_versions.values() if v), None)
    new = json.loads(_current(ctx, secret))
    old = None
    if old_version:
        old_text = rotation.read_version(ctx.env, secret, old_version, regions)
        rotation.register_postgres_value(old_text)
        old = json.loads(old_text)
    roles = [("login", new["username"], "password"),
             ("replication", replication_user,
              "replication_password" if new.get("replication_password") else "password")]
    rows, problems = [], []
    for region in sorted(ctx.env.regions):
        for inst in [i for i in instances(ctx, region, "db") if i["state"] == "running"]:
            for what, user, field in roles:
                row = {"region": region, "host": inst["ip"], "role": user,
                       "new": try_login(inst["ip"], user, new[field])}
                if old is not None:
                    row["old"] = try_login(inst["ip"], user, old[field])
                rows.append(row)
                if row["new"] != "accepted":
                    problems.append(f"{region} {inst['ip']}: {what} role {user} with the new "
                                    f"password: {row['new']}")
                if old is not None and row["old"] != "refused":
                    problems.append(f"{region} {inst['ip']}: {what} role {user} with the OLD "
                                    f"password: {row['old']}")
    if old is None:
        problems.append("the old version could not be found to try it")
    nodes = len({r["host"] for r in rows})
    if not problems:
        ctx.decide(f"old password refused, new accepted by {len(rows)} logins on {nodes} "
                   "db nodes")
    return {"ok": not problems and nodes > 0, "nodes": nodes, "logins": rows,
            "problems": problems,
            "summary": "; ".join(problems) or
                       f"old password refused, new accepted on {nodes} db nodes "
                       f"({', '.join(sorted({r['role'] for r in rows}))})"}


def _current(ctx: StepContext, secret: str) -> str:
    from drkit.keys.sources import read_secret

    value, _ = read_secret(ctx.env, secret)
    rotation.register_postgres_value(value)
    return value


@probe("keys.versions")
def versions_probe(ctx: StepContext, rotated: list[dict[str, Any]]) -> dict[str, Any]:
    """Every region holds exactly one current version of each secret key, the one
    the rotation wrote (``rotated``: the stage step's [{key, version}]), none pending."""
    problems, seen = [], []
    for item in rotated:
        key, version = item["key"], item["version"]
        for region, state in rotation.current_versions(ctx.env, _secret_of(ctx, key)).items():
            seen.append({"key": key, "region": region, **state})
            if "error" in state:
                problems.append(f"{key} in {region}: {state['error']}")
            elif state["current"] != [version] or state["pending"]:
                problems.append(f"{key} in {region}: current {state['current']}, pending "
                                f"{state['pending']} (expected current {version})")
    return {"ok": not problems, "regions": seen, "problems": problems,
            "summary": "; ".join(problems) or
                       f"one current version per region ({len(seen)} copies)"}


@probe("service.canary_impact")
def canary_impact_probe(ctx: StepContext, out: str, since: str) -> dict[str, Any]:
    """What a canary writing beside the run saw from ``since`` (the run's start)
    until now: failed writes and the longest time without an acknowledged write.
    ``out`` is its directory (drkit's canary: acks.jsonl, failures.jsonl)."""
    from drkit.lab.canary import ACKS, FAILURES, analyse, read_jsonl

    start = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
    now = datetime.now(UTC).timestamp()
    folder = Path(out)
    acks = [a for a in read_jsonl(folder / ACKS) if float(a["ack"]) >= start]
    fails = [f for f in read_jsonl(folder / FAILURES) if float(f["t"]) >= start]
    found = analyse(acks, fails, [int(a["seq"]) for a in acks], started_at=start,
                    finished_at=now)
    summary = (f"canary: {found['acknowledged']} writes acknowledged, "
               f"{found['failed_attempts']} failed, longest gap "
               f"{found['write_unavailable_s']:.2f} s, failing {found['failing_s']:.2f} s")
    ctx.decide(summary)  # the service impact belongs in the report
    return {"ok": True, "acknowledged": found["acknowledged"],
            "failed_writes": found["failed_attempts"],
            "longest_gap_s": found["write_unavailable_s"], "failing_s": found["failing_s"],
            "summary": summary}


@probe("keys.scope")
def scope_probe(ctx: StepContext, keys: list[str], everything: bool = False) -> dict[str, Any]:
    """Which of the environment's keys this rotation covers, by how each rotates."""
    try:
        chosen = rotation.select(ctx.env.settings, list(keys or []), bool(everything))
    except ValueError as exc:
        return {"ok": False, "keys": [], "problem": str(exc)}
    able = rotation.rotatable(ctx.env.settings)
    by_kind = {kind: next((k for k in chosen if able[k].rotation == kind), "")
               for kind in ("postgres", "ssh")}
    # No secret id among the outputs: the journal masks settings' secret ids, so a
    # later step reads it from env.keys by the key's name.
    return {"ok": bool(chosen), "keys": chosen, **by_kind,
            "problem": "" if chosen else "no key to rotate"}


@probe("keys.ssh_logins")
def ssh_logins_probe(ctx: StepContext, key: str, declared: str = "") -> dict[str, Any]:
    """Every running host of the estate, every region and role, tried over ssh with
    the revoked key and with the new one (fresh connections): ``ok`` when every host
    refuses the old and accepts the new."""
    from concurrent.futures import ThreadPoolExecutor

    from drkit.keys import ssh
    from drkit.keys.sources import expand

    path = expand(rotation.rotatable(ctx.env.settings)[key].source.file or "",
                  ctx.project.root)
    old = ssh.revoked_key(path)
    hosts = [(r, i["ip"]) for r in sorted(ctx.env.regions)
             for i in instances(ctx, r, states=("running",)) if i["ip"]]

    def attempt(host: tuple[str, str]) -> dict[str, Any]:
        region, ip = host
        return {"region": region, "host": ip, "new": ssh.try_login(path, ip),
                "old": ssh.try_login(old, ip) if old.exists() else "no old key to try"}

    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(attempt, hosts))
    problems = [f"{r['region']} {r['host']}: new key {r['new']}" for r in rows
                if r["new"] != "accepted"]
    problems += [f"{r['region']} {r['host']}: OLD key {r['old']}" for r in rows
                 if r["old"] != "refused"]
    if not hosts:
        problems.append("no running host to try")
    if not problems:
        when = ""
        if declared:
            began = datetime.fromisoformat(declared.replace("Z", "+00:00"))
            when = f"; {(datetime.now(UTC) - began).total_seconds():.1f} s after declared"
        ctx.decide(f"{key}: the old key is refused and the new accepted by {len(rows)} "
                   f"hosts{when}")
    return {"ok": not problems, "hosts": len(rows), "logins": rows, "problems": problems,
            "summary": "; ".join(problems) or f"old key refused, new accepted on "
                                               f"{len(rows)} hosts"}


@probe("service.hosts_healthy")
def hosts_healthy_probe(ctx: StepContext, role: str = "app", port: int = 8080,
                        path: str = "/health", left_behind: list[str] | None = None
                        ) -> dict[str, Any]:
    """Every running host of ``role`` in every region answers ``path`` with 200 (the
    sample app's health opens a fresh database connection with the credentials it
    holds: a host left on a revoked password answers 503).

    ``left_behind``: regions an approved partial rotation (--allow-partial) left on
    the old value because their Secrets Manager did not answer. Their hosts are
    asked all the same and named in the summary and as a decision, but do not fail
    the check: that they no longer reach the database is what the approval accepted."""
    rows = health_of(ctx, role, port, path)
    behind = set(left_behind or [])
    bad = [_health_line(r) for r in rows if r["status"] != 200 and r["region"] not in behind]
    kept = [_health_line(r) for r in rows if r["region"] in behind]
    healthy = sum(1 for r in rows if r["status"] == 200 and r["region"] not in behind)
    summary = "; ".join(bad) or f"{healthy} {role} hosts healthy"
    result = {"ok": healthy > 0 and not bad, "hosts": rows, "left_behind": sorted(behind)}
    if kept:
        result["decision"] = ("left on the old value, as approved (their region's Secrets "
                              "Manager did not answer): " + "; ".join(kept))
        ctx.decide(result["decision"])
        summary += "; " + result["decision"]
    return {**result, "summary": summary}


def _health_line(row: dict[str, Any]) -> str:
    return f"{row['region']} {row['host']}: {row['status']} {row['error'] or ''}".strip()


def health_of(ctx: StepContext, role: str, port: int, path: str) -> list[dict[str, Any]]:
    """What ``path`` answers on each running host of ``role``, region by region."""
    from drkit.checks.http import request

    rows = []
    for region in sorted(ctx.env.regions):
        for inst in instances(ctx, region, role, states=("running",)):
            if inst["quarantined"]:
                continue  # cut off on purpose (RB-DR-005 --isolate): serves nothing
            got = request(f"http://{inst['ip']}:{port}{path}", resolver=None)
            rows.append({"region": region, "host": inst["ip"], "status": got["status"],
                         "error": (got.get("json") or {}).get("error") or got.get("error")})
    return rows
