"""Runbook files: load and validate the YAML, bind parameters, render for operators.

The module drkit/runbook.py moved here unchanged as ``validate.py``; the next
commit splits it by job. This file keeps every ``from drkit.runbook import X``
working.
"""

from drkit.runbook.validate import (
    Param,
    Runbook,
    Step,
    bind_params,
    blocks,
    load_runbook,
    load_runbooks,
    render_spec,
    resolve_runbook,
    to_markdown,
)

__all__ = [
    "Param",
    "Runbook",
    "Step",
    "bind_params",
    "blocks",
    "load_runbook",
    "load_runbooks",
    "render_spec",
    "resolve_runbook",
    "to_markdown",
]
