"""Read-only probes. Importing this package registers every built-in probe."""

from drkit.checks import (  # noqa: F401
    app,
    aws,
    backup,
    config_backup,
    corruption,
    dns,
    estate,
    failover,
    http,
    keys,
    local,
    nodes,
    postgres,
    readiness,
    rebuild,
    restore,
    rotation,
    scratch,
    zones,
)
