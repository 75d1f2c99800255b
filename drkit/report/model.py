"""The report model: everything a post-mortem needs about one run, as plain data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from drkit.durations import format_duration
from drkit.journal import RunState, parse_ts, read_events


def refused_by_preflight(events: list[dict[str, Any]]) -> bool:
    """Whether the run's preflight refused it (then no step ran and nothing changed)."""
    return any(e["event"] == "preflight_finished" and not e["ok"] for e in events)


def outcome(*, status: str, dry_run: bool, refused: bool, rto_s: float | None,
            rpo_s: float | None, targets_met: bool) -> str:
    """How a run went, in the one line printed at its end and heading its reports."""
    if refused:
        return ("dry run " if dry_run else "") + "refused by preflight; nothing changed"
    if dry_run:
        return f"dry run {status}; nothing was changed"
    rto = "not measured" if rto_s is None else format_duration(rto_s)
    rpo = "not measured" if rpo_s is None else format_duration(rpo_s)
    return f"{status}; RTO {rto}, RPO {rpo}; targets {'met' if targets_met else 'NOT met'}"


def build_model(run_dir: Path, *, runbook: Any, targets: dict[str, float],
                dry_run_summary: list[str]) -> dict[str, Any]:
    events = read_events(run_dir / "journal.jsonl")
    state = RunState.from_events(events)
    first = events[0]
    finished = next((e for e in reversed(events) if e["event"] == "run_finished"), None)
    titles = {s.id: (s.title, s.kind) for s in runbook.all_steps()} if runbook else {}
    t0 = parse_ts(first["ts"])

    steps: dict[str, dict[str, Any]] = {}
    for ev in events:
        kind = ev["event"]
        if kind == "step_started":
            title, skind = titles.get(ev["step"], (ev["step"], ev["kind"]))
            row = steps.setdefault(ev["step"], {
                "id": ev["step"], "title": title, "kind": skind, "phase": ev["phase"],
                "attempts": 0, "status": "running", "error": None, "tail": [],
            })
            row["attempts"] += 1
            row["started_at"] = ev["ts"]
            row["start_offset_s"] = _offset(ev["ts"], t0)
            row["status"] = "running"
        elif kind == "step_finished":
            title, skind = titles.get(ev["step"], (ev["step"], "?"))
            row = steps.setdefault(ev["step"], {
                "id": ev["step"], "title": title, "kind": skind, "phase": "main",
                "attempts": 0, "started_at": ev["ts"],
                "start_offset_s": _offset(ev["ts"], t0),
            })
            row.update(status=ev["status"], finished_at=ev["ts"], duration_s=ev["duration_s"],
                       error=ev["error"], tail=ev["tail"])
        elif kind == "step_output" and steps.get(ev["step"], {}).get("kind") == "ansible":
            steps[ev["step"]]["plays"] = _plays(ev["outputs"].get("plays") or [], t0)
    for row in steps.values():
        if row["status"] == "running":
            row["status"] = "interrupted"

    rto = finished["rto_s"] if finished else None
    rpo = finished["rpo_s"] if finished else None
    targets_met = bool(finished and finished["targets_met"])
    refused = refused_by_preflight(events)
    return {
        "run_id": state.run_id,
        "runbook": {"id": state.runbook,
                    "title": getattr(runbook, "title", state.runbook),
                    "severity": getattr(runbook, "severity", None)},
        "env": state.env,
        "params": state.params,
        "dry_run": state.dry_run,
        "status": state.status,
        "outcome": outcome(status=state.status, dry_run=state.dry_run, refused=refused,
                           rto_s=rto, rpo_s=rpo, targets_met=targets_met),
        "refused_by_preflight": refused,
        "preflight_findings": [f for e in events if e["event"] == "preflight_finished"
                               for f in e["findings"]],
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "duration_s": (round((parse_ts(state.finished_at) - t0).total_seconds(), 3)
                       if state.finished_at else None),
        "incident_start": first.get("incident_start"),
        "targets": {"rto_s": targets["rto_s"], "rpo_s": targets["rpo_s"]},
        "achieved": {"rto_s": rto, "rpo_s": rpo},
        "met": {
            "rto": None if rto is None else rto <= targets["rto_s"],
            "rpo": None if rpo is None else rpo <= targets["rpo_s"],
        },
        "targets_met": targets_met,
        "steps": list(steps.values()),
        "marks": state.marks,
        "rpo_evidence": list(state.rpo_evidence),
        "approvals": list(state.approvals),
        "severity": first.get("severity") or getattr(runbook, "severity", None),
        "notifications": [{k: e.get(k) for k in ("ts", "step", "channel", "template", "action",
                                                 "ok", "detail", "attempts")}
                          for e in events if e["event"] == "notification"],
        "decisions": [e["text"] for e in events if e["event"] == "decision"],
        "resumes": state.resumes,
        "dry_run_summary": dry_run_summary,
        "artifacts": _artifacts(run_dir),
    }


def _offset(ts: str, t0: datetime) -> float:
    """Seconds from the run's start to a journal timestamp."""
    return round((parse_ts(ts) - t0).total_seconds(), 3)


def _plays(plays: list[dict[str, Any]], t0: datetime) -> list[dict[str, Any]]:
    """A playbook step's plays (the ansible driver's ``outputs.plays``), each with
    its offset from the run's start: the sub-rows under the step."""
    return [{"name": p["name"], "duration_s": p["duration_s"],
             "start_offset_s": _offset(p["started_at"], t0)}
            for p in plays]


def _artifacts(run_dir: Path) -> dict[str, str]:
    out = {"journal": "journal.jsonl"}
    for sub in ("terraform", "ansible"):
        if (run_dir / sub).is_dir():
            out[sub] = f"{sub}/"
    return out
