"""Runbook files: load and validate the YAML, bind parameters, render for operators.

A runbook is data (docs/internals.md, "Runbook YAML"). Loading turns a file into a
frozen ``Runbook`` or refuses it with every problem of the file at once, each with
its dotted path and line, before anything runs: unknown keys, wrong types, bad
durations, duplicate ids, template syntax errors, names a template cannot know at
run time (``params.X`` for an undeclared X, a step that has not run yet). The
engine then only has to ``bind_params`` and render.

One module per job:

- ``model``: ``Runbook``, ``Step``, ``Param`` and ``blocks`` (what a runbook is)
- ``load``: reading files, all of a directory, one by path or id
- ``validate``: the schema of the file, steps and their kinds
- ``fields``: reading one key of a mapping, shared by the checks
- ``params``: parameter declarations, and binding a run's values to them
- ``validate_templates``: the names a step's templates may use
- ``render``: rendering a step's spec at run time
- ``markdown``: the runbook for operators (``drkit show``)
"""

from drkit.runbook.load import load_runbook, load_runbooks, resolve_runbook
from drkit.runbook.markdown import to_markdown
from drkit.runbook.model import Param, Runbook, Step, blocks
from drkit.runbook.params import bind_params
from drkit.runbook.render import render_spec

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
