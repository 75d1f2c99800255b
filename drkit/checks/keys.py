"""Probes of the key backups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.keys import archive, operations, store
from drkit.keys import shares as shares_mod
from drkit.registry import StepContext, probe


@probe("keys.verify")
def keys_verify_probe(ctx: StepContext, label: str = "latest") -> dict[str, Any]:
    """The key backup ``label`` in every region, opened in memory with the passphrase
    from Secrets Manager and checked against its manifests (the archive's SHA-256,
    each key's), and against the keys in use now. Writes nothing."""
    return operations.verify(ctx.env, ctx.project.root, label or "latest")


@probe("keys.openable")
def keys_openable_probe(ctx: StepContext, label: str = "latest",
                        shares: list[str] | None = None) -> dict[str, Any]:
    """Whether the key backup ``label`` can be found in a region's bucket and opened,
    in memory, with the custodians' share files ``shares`` or else the passphrase
    from a region's Secrets Manager (RB-DR-007's preflight). Writes nothing."""
    share_texts = None
    try:
        if shares:
            share_texts = [shares_mod.read(Path(p)) for p in shares]
        backup = store.find(ctx.env, label or "latest")
        keys = operations.open_backup(ctx.env, backup, share_texts=share_texts)
    except (store.StoreError, archive.ArchiveError, shares_mod.SharesError) as exc:
        return {"ok": False, "problem": str(exc)}
    return {"ok": True, "label": backup.label, "region": backup.region,
            "created": backup.manifest.get("created"), "keys": sorted(keys),
            "opened_with": "shares" if share_texts is not None else "passphrase"}
