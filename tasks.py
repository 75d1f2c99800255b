"""Invoke entry point: `invoke --list`. The tasks live in drkit.cli, shared with
the `drkit` console script, so both expose the same tree."""

from drkit.cli import ns  # noqa: F401
