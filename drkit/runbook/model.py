"""What a validated runbook is: the frozen ``Runbook``, its ``Step``s and ``Param``s.

Loading builds these (``load.py``, ``validate.py``); the engine, the step runners
and ``drkit show`` read them. ``blocks`` cuts the main steps into what runs one
after the other, a step alone or a parallel block of lanes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drkit.errors import ConfigError
from drkit.schema import suggest


@dataclass(frozen=True)
class Param:
    """A declared parameter. ``default`` and ``choices`` hold coerced values
    (a duration in seconds, a list as a list)."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    help: str = ""


@dataclass(frozen=True)
class Step:
    """One step. ``spec`` is the kind's mapping exactly as written (templates
    unrendered), with terraform's ``action`` defaulted to ``apply``."""

    id: str
    title: str
    kind: str
    spec: dict[str, Any] = field(hash=False)
    when: str | None
    timeout_s: float | None
    marks_start: tuple[str, ...]
    marks_finish: tuple[str, ...]
    phase: str
    path: str
    line: int
    #: Consecutive steps that name a lane form a parallel block: each lane runs its
    #: steps in order, the lanes run at the same time (docs/internals.md, "Lanes").
    lane: str | None = None


def blocks(steps: tuple[Step, ...]) -> list[list[Step]]:
    """``steps`` cut into what runs one after the other: a step alone, or a parallel
    block (a maximal run of consecutive steps that name a lane)."""
    out: list[list[Step]] = []
    for step in steps:
        if step.lane is not None and out and out[-1][0].lane is not None:
            out[-1].append(step)
        else:
            out.append([step])
    return out


@dataclass(frozen=True)
class Runbook:
    """A validated runbook file."""

    id: str
    title: str
    why: str
    severity: str
    rto_s: float
    rpo_s: float
    params: dict[str, Param] = field(hash=False)
    preflight: tuple[Step, ...]
    steps: tuple[Step, ...]
    on_failure: tuple[Step, ...]
    path: Path
    sha256: str
    #: Every main step runs even after one fails (a readiness suite); the run
    #: fails at the end, naming each step that failed.
    keep_going: bool = False

    def all_steps(self) -> tuple[Step, ...]:
        """Preflight checks, main steps and on_failure steps, in that order."""
        return self.preflight + self.steps + self.on_failure

    def step(self, step_id: str) -> Step:
        """The step with id ``step_id``; ConfigError naming the known ids otherwise."""
        for step in self.all_steps():
            if step.id == step_id:
                return step
        known = [s.id for s in self.all_steps()]
        raise ConfigError(f"runbook {self.id} has no step {step_id!r}{suggest(step_id, known)}",
                          hint=f"steps: {', '.join(known)}")
