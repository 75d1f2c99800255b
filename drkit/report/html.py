"""report.html: a self-contained page with a Gantt-style timeline of the steps,
the RTO target drawn as a line, RTO/RPO against targets and their evidence."""

from __future__ import annotations

from html import escape
from typing import Any

from drkit.durations import format_duration
from drkit.report.markdown import REFUSED_NOTE, _d, _met, headline

_COLORS = {"ok": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e",
           "interrupted": "#ef6c00", "running": "#f9a825"}


def _bars(m: dict[str, Any]) -> list[tuple[str, str, float, float, str, float]]:
    """The timeline's rows: each step, then its plays (label, tooltip name,
    start, duration, colour, opacity)."""
    rows = []
    for s in m["steps"]:
        if s.get("start_offset_s") is None:
            continue
        colour = _COLORS.get(s["status"], "#607d8b")
        rows.append((s["title"][:30], f"{s['id']}: {s['status']}", s["start_offset_s"] or 0,
                     s.get("duration_s") or 0, colour, 1.0))
        rows += [("\u00a0\u00a0" + p["name"][:28], f"{s['id']}: {p['name']}",
                  p["start_offset_s"], p["duration_s"], colour, 0.45) for p in s.get("plays", ())]
    return rows


def _timeline(m: dict[str, Any]) -> str:
    bars = _bars(m)
    span = max([*(start + dur for _, _, start, dur, _, _ in bars), 1.0])
    rto_target = m["targets"]["rto_s"]
    show_target = rto_target <= span * 3
    scale_max = max(span, rto_target) if show_target else span
    width, label_w, row_h = 900, 220, 22
    height = row_h * len(bars) + 40
    x = lambda sec: label_w + (width - label_w - 20) * sec / scale_max  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">']
    for i, (label, name, start, dur, colour, opacity) in enumerate(bars):
        y = 10 + i * row_h
        parts.append(f'<text x="4" y="{y + 14}">{escape(label)}</text>')
        parts.append(
            f'<rect x="{x(start):.1f}" y="{y + 3}" width="{max(x(start + dur) - x(start), 2):.1f}"'
            f' height="{row_h - 6}" fill="{colour}" fill-opacity="{opacity}">'
            f'<title>{escape(name)}, {format_duration(dur)}</title></rect>')
    axis_y = 10 + len(bars) * row_h + 14
    parts.append(f'<text x="{label_w}" y="{axis_y}">0s</text>')
    parts.append(f'<text x="{width - 80}" y="{axis_y}">{format_duration(scale_max)}</text>')
    if show_target:
        tx = x(rto_target)
        parts.append(f'<line x1="{tx:.1f}" y1="0" x2="{tx:.1f}" y2="{axis_y - 12}" '
                     'stroke="#c62828" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{tx - 70:.1f}" y="{axis_y}" fill="#c62828">'
                     f'RTO target {format_duration(rto_target)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def rto_trend_svg(points: list[dict[str, Any]]) -> str:
    """An inline SVG of RTO over a rehearsal's last runs (oldest left): a dot per run
    (red when the rehearsal failed, hollow when no RTO was measured), the RTO target
    as a dashed line."""
    width, height, left, bottom, top = 420, 160, 60, 24, 12
    rtos = [p["rto_s"] for p in points if p.get("rto_s") is not None]
    target = next((p["target_rto_s"] for p in reversed(points) if p.get("target_rto_s")), None)
    scale = max([*rtos, *([target] if target and target <= 3 * max(rtos, default=0) else []),
                 1e-9]) * 1.1
    step = (width - left - 12) / max(len(points) - 1, 1)
    y = lambda v: top + (height - top - bottom) * (1 - v / scale)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11" class="rto-trend">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 8}" y2="{height - bottom}" '
             'stroke="#999"/>',
             f'<text x="4" y="{top + 8}">{format_duration(scale)}</text>',
             f'<text x="4" y="{height - bottom}">0s</text>']
    if target and target <= scale:
        parts.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{width - 8}" '
                     f'y2="{y(target):.1f}" stroke="#c62828" stroke-dasharray="4 3"/>'
                     f'<text x="{left + 4}" y="{y(target) - 3:.1f}" fill="#c62828">'
                     f'RTO target {format_duration(target)}</text>')
    line = [(left + i * step, y(p["rto_s"])) for i, p in enumerate(points)
            if p.get("rto_s") is not None]
    if len(line) > 1:
        parts.append('<polyline fill="none" stroke="#1565c0" points="'
                     + " ".join(f"{px:.1f},{py:.1f}" for px, py in line) + '"/>')
    for i, p in enumerate(points):
        px = left + i * step
        colour = "#c62828" if p.get("verdict") == "failed" else "#1565c0"
        label = escape(f"{p.get('run_id')}: RTO "
                       + ("not measured" if p.get("rto_s") is None
                          else format_duration(p["rto_s"])) + f", {p.get('verdict')}")
        if p.get("rto_s") is None:
            parts.append(f'<circle cx="{px:.1f}" cy="{height - bottom:.1f}" r="4" fill="white" '
                         f'stroke="{colour}"><title>{label}</title></circle>')
        else:
            parts.append(f'<circle cx="{px:.1f}" cy="{y(p["rto_s"]):.1f}" r="4" '
                         f'fill="{colour}"><title>{label}</title></circle>')
    parts.append(f'<text x="{left}" y="{height - 6}">last {len(points)} run(s), '
                 'oldest first</text></svg>')
    return "".join(parts)


def _rehearsal(m: dict[str, Any]) -> str:
    r = m.get("rehearsal")
    if not r:
        return ""
    regressions = "".join(f"<li>{escape(t)}</li>" for t in r["regressions"])
    return (f"<h2>Rehearsal {escape(r['name'])}: {escape(r['verdict'])}</h2>"
            + (f"<ul>{regressions}</ul>" if regressions else "")
            + f"<h3>RTO over the last runs</h3>{rto_trend_svg(r['trend'])}")


def to_html(m: dict[str, Any]) -> str:
    rb = m["runbook"]
    rows = "".join(
        f"<tr><td>{i}</td><td>{escape(s['title'])}</td><td>{s['kind']}</td>"
        f"<td style='color:{_COLORS.get(s['status'], '#000')}'>{s['status']}</td>"
        f"<td>{_d(s.get('duration_s'))}</td><td>{s.get('attempts', 0)}</td>"
        f"<td>{escape(s.get('error') or '')}</td></tr>"
        + "".join(f"<tr style='color:#555'><td></td><td>&#8627; {escape(p['name'])}</td>"
                  f"<td>play</td><td></td><td>{_d(p['duration_s'])}</td><td></td><td></td></tr>"
                  for p in s.get("plays", ()))
        for i, s in enumerate(m["steps"], 1))
    evidence = "".join(
        f"<li>{escape(e['step'])}: {_d(e['seconds'])}"
        + ("" if e["lost_writes"] is None else f", {e['lost_writes']} lost writes")
        + f" <code>{escape(str(e['detail']))}</code></li>" for e in m["rpo_evidence"])
    approvals = "".join(f"<li>{escape(a['step'])}: {a['how']} by {escape(str(a['by']))}</li>"
                        for a in m["approvals"])
    refused = (f"<h2>Refused by preflight</h2><p>{REFUSED_NOTE}</p><ul>"
               + "".join(f"<li>{escape(f)}</li>" for f in m["preflight_findings"]) + "</ul>"
               if m["refused_by_preflight"] else "")
    logs = "".join(f'<li><a href="{escape(v)}">{escape(k)}</a></li>'
                   for k, v in m["artifacts"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(rb['id'])} {escape(m['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>
<h1>{escape(rb['id'])} {escape(rb['title'])}: {headline(m)}
{'(dry run)' if m['dry_run'] else ''}</h1>
<p><b>{escape(m['outcome'])}</b></p>
<p>Run <code>{escape(m['run_id'])}</code> on <b>{escape(m['env'])}</b>,
started {m['started_at']}, finished {m['finished_at'] or 'not finished'}.</p>
{refused}<table><tr><th></th><th>target</th><th>achieved</th><th></th></tr>
<tr><td>RTO</td><td>{_d(m['targets']['rto_s'])}</td><td>{_d(m['achieved']['rto_s'])}</td>
<td>{_met(m['met']['rto'])}</td></tr>
<tr><td>RPO</td><td>{_d(m['targets']['rpo_s'])}</td><td>{_d(m['achieved']['rpo_s'])}</td>
<td>{_met(m['met']['rpo'])}</td></tr></table>
{_rehearsal(m)}<h2>Timeline</h2>{_timeline(m)}
<table><tr><th>#</th><th>step</th><th>kind</th><th>status</th><th>duration</th>
<th>attempts</th><th>error</th></tr>{rows}</table>
<h2>RPO evidence</h2><ul>{evidence or '<li>none recorded</li>'}</ul>
<h2>Approvals</h2><ul>{approvals or '<li>none</li>'}</ul>
<h2>Raw logs</h2><ul>{logs}</ul>
</body></html>
"""
