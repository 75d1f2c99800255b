"""PostgreSQL values for the playbooks, read the way drkit's Python reads them."""

from __future__ import annotations

from typing import Any

from drkit.checks.postgres import parse_lsn


def pg_lsn_int(lsn: str | None) -> int:
    """``'16/B374D848' | pg_lsn_int``: the WAL position in bytes (0 for none), so that
    Jinja can compare and sort LSNs."""
    return parse_lsn(lsn or None) or 0


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pg_lsn_int": pg_lsn_int}
