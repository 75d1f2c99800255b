"""Probes of the key backups."""

from __future__ import annotations

from typing import Any

from drkit.keys import operations
from drkit.registry import StepContext, probe


@probe("keys.verify")
def keys_verify_probe(ctx: StepContext, label: str = "latest") -> dict[str, Any]:
    """The key backup ``label`` in every region, opened in memory with the passphrase
    from Secrets Manager and checked against its manifests (the archive's SHA-256,
    each key's), and against the keys in use now. Writes nothing."""
    return operations.verify(ctx.env, ctx.project.root, label or "latest")
