"""``drkit postmortem RUN_ID``: the plans' post-incident record, drafted from a
run's journal: summary, RTO/RPO against targets, the timeline of every event,
the decisions, what failed, and the skeleton of the review (root cause, lessons,
action items, the 48-hour / 1-week / 30-day checklist).

Everything measured comes from the journal; what only people know (root cause,
impact on customers, owners) is left as a marked blank to fill in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.durations import format_duration
from drkit.fsutil import atomic_write_text
from drkit.journal import parse_ts, read_events
from drkit.report.model import build_model

FILE_NAME = "postmortem.md"
TODO = "_(to fill in)_"


def _d(seconds: float | None) -> str:
    return "not measured" if seconds is None else format_duration(seconds)


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("met" if value else "**NOT met**")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _timeline(events: list[dict[str, Any]], titles: dict[str, str]) -> list[tuple[str, str]]:
    """(time, what) for every event a reviewer reads, in journal order."""
    t0 = parse_ts(events[0]["ts"])
    rows = []
    for ev in events:
        kind = ev["event"]
        step = ev.get("step")
        title = f"{step} ({titles[step]})" if step in titles and titles[step] != step else step
        if kind == "run_started":
            what = (f"run started by {ev['user']}@{ev['host']} on {ev['env']}"
                    + (f"; incident began {ev['incident_start']}"
                       if ev.get("incident_start") else ""))
        elif kind == "run_resumed":
            what = f"run resumed by {ev['user']}@{ev['host']}"
        elif kind == "preflight_finished":
            what = ("preflight passed" if ev["ok"]
                    else "preflight REFUSED: " + "; ".join(ev["findings"]))
        elif kind == "step_started":
            what = f"step {title} started ({ev['kind']}, attempt {ev['attempt']}" + (
                ", on failure)" if ev["phase"] == "on_failure" else ")")
        elif kind == "step_finished":
            what = f"step {title} {ev['status']} in {format_duration(ev['duration_s'])}" + (
                f": {ev['error']}" if ev.get("error") else "")
        elif kind == "mark":
            what = f"mark {ev['name']} (step {step})"
        elif kind == "rpo_evidence":
            what = f"RPO evidence from {step}: {_d(ev['seconds'])}" + (
                "" if ev["lost_writes"] is None else f", {ev['lost_writes']} lost writes")
        elif kind == "approval":
            what = f"approval {step}: {ev['how']} by {ev['by']}"
        elif kind == "notify":  # the step's message; older journals: one per channel
            what = f"notification {ev['template']}" + (
                f" to {ev['channel']}: " + ("sent" if ev.get("sent") else "NOT sent")
                if "channel" in ev else " rendered")
        elif kind == "notification":  # its delivery on one channel
            what = (f"notification {ev['template']} to {ev['channel']}: "
                    + ("delivered" if ev.get("ok") else "NOT delivered")
                    + (f" ({ev['detail']})" if ev.get("detail") else ""))
        elif kind == "decision":
            what = f"decision: {ev['text']}"
        elif kind == "interrupted":
            what = f"interrupted at {step} by {ev['signal']}"
        elif kind == "run_finished":
            what = (f"run finished: {ev['status']}; RTO {_d(ev['rto_s'])}, "
                    f"RPO {_d(ev['rpo_s'])}")
        else:  # step_output: data, not an event a reader follows
            continue
        offset = (parse_ts(ev["ts"]) - t0).total_seconds()
        rows.append((f"{ev['ts'][11:19]}Z +{format_duration(offset)}", what))
    return rows


def draft(run_dir: Path, *, runbook: Any, targets: dict[str, float]) -> str:
    """The post-incident record of the run in ``run_dir`` as Markdown."""
    events = read_events(run_dir / "journal.jsonl")
    m = build_model(run_dir, runbook=runbook, targets=targets, dry_run_summary=[])
    first = events[0]
    titles = {s["id"]: s["title"] for s in m["steps"]}
    if runbook is not None:
        titles.update({s.id: s.title for s in runbook.all_steps()})
    rb = m["runbook"]
    failed = [s for s in m["steps"] if s["status"] in ("failed", "interrupted")]
    missed = [k for k in ("rto", "rpo") if m["met"][k] is False]
    lines = [
        f"# Post-incident record: {rb['id']} {rb['title']}",
        "",
        f"Drafted by `drkit postmortem` from run `{m['run_id']}`'s journal. Measured facts "
        f"below come from the journal; fill in what is marked {TODO}.",
        "",
        "## Summary",
        "",
        f"- **Outcome:** {m['outcome']}" + (" (dry run)" if m["dry_run"] else ""),
        f"- **Environment:** {m['env']}",
        f"- **Severity:** {rb.get('severity') or TODO}",
        f"- **Started:** {m['started_at']}; **finished:** {m['finished_at'] or 'not finished'}"
        + (f"; **took** {format_duration(m['duration_s'])}" if m["duration_s"] else ""),
        f"- **Incident began:** {m['incident_start'] or TODO}",
        f"- **Run by:** {first['user']}@{first['host']}"
        + (f"; resumed {m['resumes']} time(s)" if m["resumes"] else ""),
        "- **Parameters:** " + (", ".join(f"{k}={v}" for k, v in sorted(m["params"].items()))
                                or "none"),
        f"- **Impact (users, functionality, revenue):** {TODO}",
        "",
        "## RTO and RPO against targets",
        "",
        "| | target | achieved | |",
        "|---|---|---|---|",
        f"| RTO | {_d(m['targets']['rto_s'])} | {_d(m['achieved']['rto_s'])} | "
        f"{_met(m['met']['rto'])} |",
        f"| RPO | {_d(m['targets']['rpo_s'])} | {_d(m['achieved']['rpo_s'])} | "
        f"{_met(m['met']['rpo'])} |",
        "",
    ]
    if m["rpo_evidence"]:
        lines += ["RPO evidence:", ""]
        lines += [f"- {e['step']}: {_d(e['seconds'])}"
                  + ("" if e["lost_writes"] is None else f", {e['lost_writes']} lost writes")
                  + (f" ({_cell(e['detail'].get('evidence'))})"
                     if isinstance(e["detail"], dict) and e["detail"].get("evidence") else "")
                  for e in m["rpo_evidence"]]
        lines.append("")
    lines += ["## Steps", "", "| # | step | kind | status | duration | attempts |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {i} | {_cell(s['id'])}: {_cell(s['title'])} | {s['kind']} | {s['status']} | "
              f"{_d(s.get('duration_s'))} | {s.get('attempts', 0)} |"
              for i, s in enumerate(m["steps"], 1)]
    lines += ["", "## Timeline (UTC)", "", "| time | event |", "|---|---|"]
    lines += [f"| {t} | {_cell(what)} |" for t, what in _timeline(events, titles)]
    lines += ["", "## Decisions", ""]
    lines += [f"- {d}" for d in m["decisions"]] or ["- none journaled"]
    lines += ["", "## What failed", ""]
    what_failed = []
    if m["refused_by_preflight"]:
        what_failed += [f"- preflight refused the run: {f}" for f in m["preflight_findings"]]
    for s in failed:
        what_failed.append(f"- step **{s['id']}** ({s['title']}) {s['status']}"
                           + (f": {s['error']}" if s.get("error") else ""))
        what_failed += [f"    > {line}" for line in (s.get("tail") or [])[-5:]]
    what_failed += [f"- {k.upper()} target missed: {_d(m['achieved'][k + '_s'])} against "
                    f"{_d(m['targets'][k + '_s'])}" for k in missed]
    what_failed += [f"- notification {n.get('template')} to {n.get('channel')} was not delivered"
                    for n in m["notifications"] if not n.get("sent", n.get("ok"))
                    and not m["dry_run"]]
    lines += what_failed or ["- nothing: every step succeeded and the targets were met"]
    lines += ["", "## Root cause", "", TODO, "",
              "## Lessons learned", "",
              f"- What went well: {TODO}", f"- What went wrong: {TODO}",
              f"- Where we were lucky: {TODO}", "",
              "## Action items", "",
              "| # | action | owner | priority | due |", "|---|---|---|---|---|"]
    actions = [f"Find and fix why step {s['id']} {s['status']}" for s in failed]
    actions += [f"Bring {k.upper()} back within its target (see the step durations)"
                for k in missed]
    actions += ["Confirm the root cause and record it above",
                f"Update runbook {rb['id']} and the DR plan where they did not match reality",
                "Rehearse the fix (`drkit rehearse`) and compare with the history"]
    lines += [f"| {i} | {_cell(a)} | {TODO} | {'high' if i <= len(failed) + len(missed) else ''}"
              f" | {TODO} |" for i, a in enumerate(actions, 1)]
    lines += ["", "## Review checklist", "",
              "Within 48 hours:", "",
              "- [ ] Post-incident review held; this timeline completed",
              "- [ ] Root cause identified", "- [ ] Lessons learned and action items recorded",
              "", "Within 1 week:", "",
              "- [ ] Post-mortem published", "- [ ] Action items started",
              "- [ ] Runbooks and DR plan updated if needed", "- [ ] Team debrief held",
              "", "Within 30 days:", "",
              "- [ ] Critical action items done", "- [ ] Preventive measures verified",
              "- [ ] Training material updated", "- [ ] Incident record closed", ""]
    return "\n".join(lines)


def write(run_dir: Path, *, runbook: Any, targets: dict[str, float]) -> tuple[Path, str]:
    """Draft the record and write it beside the run's reports."""
    text = draft(run_dir, runbook=runbook, targets=targets)
    path = run_dir / FILE_NAME
    atomic_write_text(path, text)
    return path, text
