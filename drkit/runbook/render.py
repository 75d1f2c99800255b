"""Rendering a step's templates at run time, and the names its context holds.

The names are the contract ``validate_templates.py`` checks a runbook against
when it loads (docs/internals.md, "Template context").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drkit import templating
from drkit.runbook.model import Step

#: Top-level names every template may use (docs/internals.md, "Template context").
CONTEXT_NAMES = ("env", "params", "run", "steps", "targets")
#: Extra name allowed in these fields only: the probe's result.
RESULT_FIELDS = ("check.expect", "check.message")
RUN_FIELDS = ("id", "dry_run", "started_at", "runbook")
TARGET_FIELDS = ("rto_s", "rpo_s")


def render_spec(step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
    """The step's spec rendered for running it, except the fields that can only
    be rendered after the probe ran (``check.expect``, ``check.message``: they use
    ``result``); those stay as written for the check to evaluate.

    Undefined names raise ConfigError naming the dotted path of the field.
    """
    late = {field.split(".", 1)[1] for field in RESULT_FIELDS
            if field.startswith(f"{step.kind}.")}
    rendered = {
        key: value if key in late
        else templating.render(value, context, where=f"{step.path}.{step.kind}.{key}")
        for key, value in step.spec.items()
    }
    return rendered

