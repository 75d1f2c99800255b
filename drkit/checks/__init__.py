"""Read-only probes. Importing this package registers every built-in probe."""

from drkit.checks import local  # noqa: F401
