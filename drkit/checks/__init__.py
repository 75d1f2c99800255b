"""Read-only probes. Importing this package registers every built-in probe."""

from drkit.checks import aws, dns, estate, failover, http, local, postgres  # noqa: F401
