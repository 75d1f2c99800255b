"""Idempotent Python actions. Importing this package registers every built-in action."""

from drkit.actions import backup, keys, local, tables, zones  # noqa: F401
