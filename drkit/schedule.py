"""The rehearsal schedule written out for a scheduler: systemd timer units, a
crontab, or a GitHub Actions workflow, from ``drkit.rehearsals.schedule``.

Every entry runs ``drkit rehearse NAME --env ENV`` in the project, with the
interpreter drkit runs under (so a timer's sparse PATH does not matter), at its
``at`` time in UTC: daily; weekly on Monday; monthly on the 1st; quarterly on the
1st of January, April, July and October; yearly on the 1st of January.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import yaml

from drkit.errors import ConfigError
from drkit.fsutil import atomic_write_text
from drkit.rehearsals import Scheduled

TARGETS = ("systemd", "cron", "ci")

#: period -> (cron day-of-month, month, day-of-week; systemd OnCalendar date part)
_PERIODS = {
    "daily": ("*", "*", "*", "*-*-*"),
    "weekly": ("*", "*", "1", "Mon *-*-*"),
    "monthly": ("1", "*", "*", "*-*-01"),
    "quarterly": ("1", "1,4,7,10", "*", "*-01,04,07,10-01"),
    "yearly": ("1", "1", "*", "*-01-01"),
}


def cron_expression(entry: Scheduled) -> str:
    dom, month, dow, _ = _PERIODS[entry.when]
    return f"{entry.minute} {entry.hour} {dom} {month} {dow}"


def on_calendar(entry: Scheduled) -> str:
    return f"{_PERIODS[entry.when][3]} {entry.hour:02d}:{entry.minute:02d}:00 UTC"


def rehearse_argv(entry: Scheduled, env_ref: str) -> list[str]:
    return [sys.executable, "-m", "drkit", "rehearse", entry.name, "--env", env_ref]


def unit_name(env_name: str, entry: Scheduled) -> str:
    return f"drkit-rehearse-{_slug(env_name)}-{entry.name}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-") or "env"


def _systemd_quote(arg: str) -> str:
    """One ExecStart/Environment word: specifiers (%) doubled, quoted when needed."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_./:=@+,-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_units(schedule: list[Scheduled], *, env_name: str, env_ref: str,
                  project_root: Path) -> dict[str, str]:
    """{file name: content}: a oneshot .service and its .timer per rehearsal."""
    out = {}
    root = str(project_root)
    for entry in schedule:
        name = unit_name(env_name, entry)
        exec_start = " ".join(_systemd_quote(a) for a in rehearse_argv(entry, env_ref))
        out[f"{name}.service"] = (
            "# Written by `drkit rehearse.install systemd`; the schedule is\n"
            f"# drkit.rehearsals.schedule in environment {env_name}'s settings.\n"
            "[Unit]\n"
            f"Description=drkit rehearsal {entry.name} ({entry.runbook}) on {env_name}\n"
            "Wants=network-online.target\n"
            "After=network-online.target\n"
            "\n[Service]\n"
            "Type=oneshot\n"
            f"WorkingDirectory={_systemd_quote(root)}\n"
            f"Environment={_systemd_quote('DRKIT_PROJECT=' + root)}\n"
            f"ExecStart={exec_start}\n")
        out[f"{name}.timer"] = (
            "# Written by `drkit rehearse.install systemd`.\n"
            "[Unit]\n"
            f"Description={entry.when} drkit rehearsal {entry.name} on {env_name}\n"
            "\n[Timer]\n"
            f"OnCalendar={on_calendar(entry)}\n"
            "Persistent=true\n"
            f"Unit={name}.service\n"
            "\n[Install]\n"
            "WantedBy=timers.target\n")
    return out


def crontab(schedule: list[Scheduled], *, env_name: str, env_ref: str, project_root: Path,
            log_dir: Path) -> str:
    """A crontab (crontab(5)): one line per rehearsal, output appended to a log."""
    lines = [f"# drkit rehearsals on environment {env_name}, written by "
             "`drkit rehearse.install cron`.",
             "# Times are UTC (CRON_TZ for cronie; elsewhere run cron in UTC).",
             "CRON_TZ=UTC"]
    for entry in schedule:
        log = log_dir / f"{_slug(env_name)}-{entry.name}.log"
        command = (f"cd {shlex.quote(str(project_root))} && "
                   f"DRKIT_PROJECT={shlex.quote(str(project_root))} "
                   + " ".join(shlex.quote(a) for a in rehearse_argv(entry, env_ref))
                   + f" >> {shlex.quote(str(log))} 2>&1")
        lines.append(f"# {entry.name}: {entry.runbook} {entry.when} at "
                     f"{entry.hour:02d}:{entry.minute:02d} UTC")
        lines.append(f"{cron_expression(entry)} {command.replace('%', chr(92) + '%')}")
    return "\n".join(lines) + "\n"


def workflow(schedule: list[Scheduled], *, env_name: str, env_ref: str) -> str:
    """A GitHub Actions workflow: the schedule's cron lines as triggers, one job per
    rehearsal that runs when its cron fired (or when dispatched by name), on a
    self-hosted runner labelled for the environment (a rehearsal needs the estate)."""
    names = [e.name for e in schedule]
    jobs = {}
    for entry in schedule:
        cron = cron_expression(entry)
        jobs[entry.name] = {
            "name": f"{entry.name} ({entry.runbook}, {entry.when})",
            "if": (f"github.event.schedule == '{cron}' || "
                   f"(github.event_name == 'workflow_dispatch' && "
                   f"inputs.rehearsal == '{entry.name}')"),
            "runs-on": ["self-hosted", f"drkit-{_slug(env_name)}"],
            "timeout-minutes": 240,
            "concurrency": {"group": f"drkit-{_slug(env_name)}", "cancel-in-progress": False},
            "steps": [
                {"uses": "actions/checkout@v4"},
                {"name": "install drkit", "run": "python3 -m pip install -e ."},
                {"name": f"rehearse {entry.name}",
                 "run": f"python3 -m drkit rehearse {shlex.quote(entry.name)} "
                        f"--env {shlex.quote(env_ref)}"},
                {"name": "keep the evidence", "if": "always()",
                 "uses": "actions/upload-artifact@v4",
                 "with": {"name": f"rehearsal-{entry.name}-${{{{ github.run_id }}}}",
                          "path": ".drkit/runs/\n.drkit/history/"}},
            ],
        }
    crons = list(dict.fromkeys(cron_expression(e) for e in schedule))
    doc = {
        "name": f"drkit rehearsals ({env_name})",
        "on": {
            "schedule": [{"cron": c} for c in crons],
            "workflow_dispatch": {"inputs": {"rehearsal": {
                "description": "the rehearsal to run now", "required": True,
                "type": "choice", "options": names}}},
        },
        "permissions": {"contents": "read"},
        "jobs": jobs,
    }
    header = (f"# drkit rehearsals on environment {env_name}, written by "
              "`drkit rehearse.install ci`.\n# Copy to .github/workflows/; times are UTC.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)


def install(target: str, schedule: list[Scheduled], *, env_name: str, env_ref: str,
            project_root: Path, out_dir: Path, log_dir: Path) -> list[Path]:
    """Write the schedule for ``target`` into ``out_dir``; the files written."""
    if target not in TARGETS:
        raise ConfigError(f"{target!r}: not a scheduler",
                          hint=f"use one of: {', '.join(TARGETS)}")
    if not schedule:
        raise ConfigError(f"environment {env_name} has no rehearsals to schedule "
                          "(drkit.rehearsals.schedule is empty or missing)",
                          hint="list them as {name, runbook, params, when, at}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a directory",
                          hint="name a directory (it is created if missing)")
    if target == "systemd":
        files = systemd_units(schedule, env_name=env_name, env_ref=env_ref,
                              project_root=project_root)
    elif target == "cron":
        log_dir.mkdir(parents=True, exist_ok=True)  # cron's `>> log` needs it
        files = {f"drkit-rehearse-{_slug(env_name)}.crontab": crontab(
            schedule, env_name=env_name, env_ref=env_ref, project_root=project_root,
            log_dir=log_dir)}
    else:
        files = {f"drkit-rehearse-{_slug(env_name)}.yml": workflow(
            schedule, env_name=env_name, env_ref=env_ref)}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written


# ----------------------------------------------------------------------------- cron syntax

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
                ("month", 1, 12), ("day of week", 0, 7))
_NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
              "dec"],
          4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}
_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def parse_cron_line(line: str) -> tuple[list[str], str] | None:
    """A crontab(5) line as (five time fields, command); None for a comment, a blank
    or a variable line; ValueError saying which field is wrong otherwise."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or _ENV_LINE.match(stripped):
        return None
    parts = stripped.split(None, 5)
    if len(parts) < 6:
        raise ValueError(f"expected 5 time fields and a command, got {len(parts)} word(s)")
    for index, (text, (label, low, high)) in enumerate(zip(parts[:5], _CRON_FIELDS,
                                                           strict=True)):
        _check_cron_field(text, label, low, high, _NAMES.get(index, []))
    return parts[:5], parts[5]


def _check_cron_field(text: str, label: str, low: int, high: int, names: list[str]) -> None:
    def value(v: str) -> int:
        if v.lower() in names:
            return names.index(v.lower()) + (1 if label == "month" else 0)
        if not v.isdigit():
            raise ValueError(f"{label} {text!r}: {v!r} is not a number")
        n = int(v)
        if not low <= n <= high:
            raise ValueError(f"{label} {text!r}: {n} is outside {low}-{high}")
        return n

    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{label} {text!r}: step {step!r} is not a whole number > 0")
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        if not start:
            raise ValueError(f"{label} {text!r}: empty value")
        first = value(start)
        if dash and value(end) < first:
            raise ValueError(f"{label} {text!r}: range {base} runs backwards")
