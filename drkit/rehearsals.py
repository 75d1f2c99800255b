"""``drkit.rehearsals``: the environment's rehearsal settings, validated with dotted paths.

A rehearsal is a runbook run unattended on a schedule, then the environment put
back to its baseline, its result compared with the previous ones. What to run and
when, how to restore the baseline and what counts as a regression are the
environment's, not drkit's: the lab restores itself with ``drkit lab.reset``, a
production rehearsal environment with its own baseline step.

    rehearsals:
      baseline: [drkit, lab.reset]        # argv, run in the project after every rehearsal
      compare: {last: 5, margin: 25%}     # RTO worse than the median of the last 5 by > 25 %
      notify: [status-page]               # channels told of a failed rehearsal (default: all)
      schedule:                           # at: "HH:MM" UTC, quoted (YAML reads 12:30 as 750)
        - {name: region-failover, runbook: RB-DR-003, params: {region: eu-west},
           when: quarterly, at: "02:00"}   # baseline: [...] here overrides the environment's
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: How often a scheduled rehearsal runs (the plans' daily, weekly, monthly,
#: quarterly drills, and the yearly full one). Times are UTC.
PERIODS = ("daily", "weekly", "monthly", "quarterly", "yearly")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
RUNBOOK_RE = re.compile(r"^RB-[A-Z0-9][A-Z0-9-]*$")
AT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DEFAULT_LAST = 5
DEFAULT_MARGIN = 0.25

_KEYS = {"baseline", "compare", "notify", "schedule", "scratch", "live"}
_SCRATCH_KEYS = {"estate", "zone", "state_key", "region", "terraform_vars"}
_COMPARE_KEYS = {"last", "margin"}
_ENTRY_KEYS = {"name", "runbook", "params", "when", "at", "baseline"}


@dataclass(frozen=True)
class Scheduled:
    """One rehearsal of the schedule: run ``runbook`` with ``params`` every ``when`` at ``at``."""

    name: str
    runbook: str
    params: dict[str, Any]
    when: str
    hour: int
    minute: int
    baseline: list[str] | None = None  # this rehearsal's own, else the environment's


@dataclass(frozen=True)
class RehearsalSettings:
    baseline: list[str] | None
    last: int = DEFAULT_LAST
    margin: float = DEFAULT_MARGIN  # a fraction: 0.25 is 25 %
    notify: list[str] | None = None  # None: every channel
    schedule: list[Scheduled] = field(default_factory=list)

    def find(self, name: str) -> Scheduled | None:
        return next((s for s in self.schedule if s.name == name), None)


def parse_margin(value: Any) -> float:
    """A percentage (``25%`` or ``25``) as a fraction (0.25)."""
    text = str(value).strip()
    number = text[:-1].strip() if text.endswith("%") else text
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a percentage")
    try:
        pct = float(number)
    except ValueError:
        raise ValueError(f"{value!r} is not a percentage; e.g. 25%") from None
    if not 0 <= pct <= 1000:
        raise ValueError(f"{value!r}: expected a percentage between 0% and 1000%")
    return pct / 100.0


def settings_problems(r: Any, notify_settings: Any = None) -> list[str]:
    """Every problem in ``drkit.rehearsals``, each with its dotted path.
    ``notify_settings`` is ``drkit.notify`` (its channels are what a rehearsal may notify)."""
    channels = (notify_settings.get("channels") if isinstance(notify_settings, dict)
                else None)
    if not isinstance(r, dict):
        return ["drkit.rehearsals: expected a mapping {baseline, compare, notify, schedule}"]
    found = [f"drkit.rehearsals.{k}: unknown key; expected one of: {', '.join(sorted(_KEYS))}"
             for k in r if k not in _KEYS]
    found += _command_problems(r.get("baseline"), "drkit.rehearsals.baseline")
    compare = r.get("compare", {})
    if not isinstance(compare, dict):
        found.append("drkit.rehearsals.compare: expected a mapping {last, margin}")
    else:
        found += [f"drkit.rehearsals.compare.{k}: unknown key; expected one of: "
                  f"{', '.join(sorted(_COMPARE_KEYS))}" for k in compare if k not in _COMPARE_KEYS]
        last = compare.get("last", DEFAULT_LAST)
        if not (isinstance(last, int) and not isinstance(last, bool) and last >= 1):
            found.append(f"drkit.rehearsals.compare.last: expected a whole number >= 1, "
                         f"got {last!r}")
        if "margin" in compare:
            try:
                parse_margin(compare["margin"])
            except ValueError as exc:
                found.append(f"drkit.rehearsals.compare.margin: {exc}")
    notify = r.get("notify")
    if notify is not None:
        if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
            found.append("drkit.rehearsals.notify: expected a list of channel names")
        elif isinstance(channels, dict):
            found += [f"drkit.rehearsals.notify: {n!r} is not one of the channels "
                      f"({', '.join(sorted(channels)) or 'none'})" for n in notify
                      if n not in channels]
    found += _scratch_problems(r.get("scratch"))
    schedule = r.get("schedule", [])
    if not isinstance(schedule, list):
        return [*found, "drkit.rehearsals.schedule: expected a list of "
                        "{name, runbook, params, when, at}"]
    seen: set[str] = set()
    for i, entry in enumerate(schedule):
        found += _entry_problems(entry, f"drkit.rehearsals.schedule[{i}]", seen)
    return found


def _scratch_problems(scratch: Any) -> list[str]:
    """``drkit.rehearsals.scratch``: the rebuild rehearsal's scratch estate (drkit.scratch)."""
    if scratch is None:
        return []
    path = "drkit.rehearsals.scratch"
    if not isinstance(scratch, dict):
        return [f"{path}: expected a mapping {{estate, zone, state_key, region, terraform_vars}}"]
    found = [f"{path}.{k}: unknown key; expected one of: {', '.join(sorted(_SCRATCH_KEYS))}"
             for k in scratch if k not in _SCRATCH_KEYS]
    for key in ("estate", "zone", "state_key", "region"):
        if key in scratch and (not isinstance(scratch[key], str) or not scratch[key]):
            found.append(f"{path}.{key}: expected a non-empty string")
    if "terraform_vars" in scratch and not isinstance(scratch["terraform_vars"], dict):
        found.append(f"{path}.terraform_vars: expected a mapping of Terraform variables")
    return found


def _command_problems(command: Any, path: str) -> list[str]:
    if command is None or (isinstance(command, list) and command
                           and all(isinstance(a, str) and a for a in command)):
        return []
    return [f"{path}: expected a command as a list of strings, e.g. [drkit, lab.reset]"]


def _entry_problems(entry: Any, path: str, seen: set[str]) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{path}: expected a mapping {{name, runbook, params, when, at}}"]
    found = [f"{path}.{k}: unknown key; expected one of: {', '.join(sorted(_ENTRY_KEYS))}"
             for k in entry if k not in _ENTRY_KEYS]
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        found.append(f"{path}.name: {name!r} is not a rehearsal name (lowercase letters, "
                     "digits and -, e.g. region-failover)")
    elif name in seen:
        found.append(f"{path}.name: {name} is listed twice")
    seen.add(str(name))
    runbook = entry.get("runbook")
    if not isinstance(runbook, str) or not RUNBOOK_RE.match(runbook):
        found.append(f"{path}.runbook: {runbook!r} is not a runbook id (e.g. RB-DR-003)")
    params = entry.get("params", {})
    if not isinstance(params, dict):
        found.append(f"{path}.params: expected a mapping of parameter names to values")
    when = entry.get("when")
    if when not in PERIODS:
        found.append(f"{path}.when: {when!r} is not one of {', '.join(PERIODS)}")
    at = entry.get("at", "03:00")
    if not isinstance(at, str) or not AT_RE.match(at):
        found.append(f"{path}.at: {at!r} is not a time of day HH:MM (UTC), quoted, "
                     "e.g. \"02:30\"")
    found += _command_problems(entry.get("baseline"), f"{path}.baseline")
    return found


def load_settings(settings: dict[str, Any]) -> RehearsalSettings:
    """The rehearsal settings of an environment whose settings are already valid."""
    r = settings.get("rehearsals") or {}
    compare = r.get("compare") or {}
    schedule = []
    for entry in r.get("schedule") or []:
        hour, minute = (int(x) for x in str(entry.get("at", "03:00")).split(":"))
        schedule.append(Scheduled(name=entry["name"], runbook=entry["runbook"],
                                  params=dict(entry.get("params") or {}), when=entry["when"],
                                  hour=hour, minute=minute,
                                  baseline=list(entry["baseline"]) if entry.get("baseline")
                                  else None))
    return RehearsalSettings(
        baseline=list(r["baseline"]) if r.get("baseline") else None,
        last=int(compare.get("last", DEFAULT_LAST)),
        margin=parse_margin(compare["margin"]) if "margin" in compare else DEFAULT_MARGIN,
        notify=list(r["notify"]) if r.get("notify") is not None else None,
        schedule=schedule)
