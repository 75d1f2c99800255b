"""report.md: what an operator pastes into the incident channel or the post-mortem."""

from __future__ import annotations

from typing import Any

from drkit.durations import format_duration


def _d(seconds: float | None) -> str:
    return "not measured" if seconds is None else format_duration(seconds)


def _met(value: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[value]


#: What a report says of a run its preflight refused, above the findings.
REFUSED_NOTE = "No step ran and nothing changed; no RTO or RPO was measured. Findings:"


def headline(m: dict[str, Any]) -> str:
    """The status a report's title shows: FAILED, SUCCEEDED, or REFUSED BY PREFLIGHT."""
    return "REFUSED BY PREFLIGHT" if m["refused_by_preflight"] else m["status"].upper()


def to_markdown(m: dict[str, Any]) -> str:
    rb = m["runbook"]
    lines = [
        f"# {rb['id']} {rb['title']}: {headline(m)}" + (" (dry run)" if m["dry_run"] else ""),
        "",
        f"- Outcome: {m['outcome']}",
        f"- Run: `{m['run_id']}` on environment `{m['env']}`",
        f"- Started: {m['started_at']}; finished: {m['finished_at'] or 'not finished'}"
        + (f" ({_d(m['duration_s'])})" if m["duration_s"] is not None else ""),
        f"- Parameters: {', '.join(f'{k}={v}' for k, v in m['params'].items()) or 'none'}",
        "",
    ]
    if m["refused_by_preflight"]:
        lines += ["## Refused by preflight", "", REFUSED_NOTE, ""]
        lines += [f"- {f}" for f in m["preflight_findings"]] + [""]
    lines += [
        "## Targets",
        "",
        "| | target | achieved | |",
        "|---|---|---|---|",
        f"| RTO | {_d(m['targets']['rto_s'])} | {_d(m['achieved']['rto_s'])} "
        f"| {_met(m['met']['rto'])} |",
        f"| RPO | {_d(m['targets']['rpo_s'])} | {_d(m['achieved']['rpo_s'])} "
        f"| {_met(m['met']['rpo'])} |",
        "",
    ]
    if m["rpo_evidence"]:
        lines += ["### RPO evidence", ""]
        for ev in m["rpo_evidence"]:
            lost = "" if ev["lost_writes"] is None else f", {ev['lost_writes']} lost writes"
            lines.append(f"- {ev['step']}: {_d(ev['seconds'])}{lost}; "
                         + ", ".join(f"{k}={v}" for k, v in (ev["detail"] or {}).items()))
        lines.append("")
    lines += ["## Timeline", "", "| # | step | kind | status | start | duration | attempts |",
              "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(m["steps"], 1):
        lines.append(
            f"| {i} | {s['title']} | {s['kind']} | {s['status']} | "
            f"+{format_duration(s.get('start_offset_s') or 0)} | "
            f"{_d(s.get('duration_s'))} | {s.get('attempts', 0)} |")
        lines += [f"| | ↳ {play['name']} | play | | +{format_duration(play['start_offset_s'])} "
                  f"| {_d(play['duration_s'])} | |" for play in s.get("plays", ())]
    lines.append("")
    if m["marks"]:
        lines += ["Moments: " + ", ".join(f"{k} {v}" for k, v in m["marks"].items()), ""]
    failed = [s for s in m["steps"] if s["status"] in ("failed", "interrupted")]
    for s in failed:
        lines += [f"## {s['status'].capitalize()}: {s['title']}", "", s.get("error") or "", ""]
        if s.get("tail"):
            lines += ["```", *s["tail"], "```", ""]
    if m["approvals"]:
        lines += ["## Approvals", ""]
        lines += [f"- {a['step']}: {a['how']} by {a['by'] or '-'} at {a['ts']}"
                  + (f"; asked: {a['prompt']}" if a.get("prompt") else "")
                  for a in m["approvals"]]
        lines.append("")
    lines += _notifications(m.get("notifications") or [], m.get("severity"))
    if m["dry_run_summary"]:
        lines += ["## What would change", ""] + [f"- {x}" for x in m["dry_run_summary"]] + [""]
    if m["decisions"]:
        lines += ["## Decisions", ""] + [f"- {d}" for d in m["decisions"]] + [""]
    lines += ["## Raw logs", ""] + [f"- {k}: `{v}`" for k, v in m["artifacts"].items()] + [""]
    return "\n".join(lines)


def _notifications(rows: list[dict[str, Any]], severity: str | None) -> list[str]:
    """Every delivery, failures first: a channel that failed never failed the run,
    so the report is where it shows."""
    if not rows:
        return []
    failed = [r for r in rows if not r["ok"]]
    lines = ["## Notifications", "",
             f"Severity {severity or 'n/a'}; {len(rows) - len(failed)} delivered, "
             f"{len(failed)} failed.", ""]
    if failed:
        lines += ["Failed (the run went on without them):", ""]
        lines += [f"- **{r['channel']}** {r['template']} ({r['action']}): {r['detail']}"
                  for r in failed] + [""]
    lines += ["| time | channel | template | action | ok | attempts | detail |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.get('ts') or ''} | {r['channel']} | {r['template']} | {r['action']} | "
              f"{'yes' if r['ok'] else 'NO'} | {r['attempts']} | "
              f"{str(r['detail']).replace('|', '/')} |" for r in rows]
    return [*lines, ""]
