"""Actions of the key runbooks (RB-KY-001 key backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.errors import StepFailed
from drkit.keys import archive, operations, shares, sources, store
from drkit.registry import StepContext, action


@action("keys.backup")
def keys_backup(ctx: StepContext, shares_count: int = 0, threshold: int = 0,
                shares_out: str = "") -> dict[str, Any]:
    """Every key the environment lists, encrypted into every region's bucket; with
    ``shares_count``, the recovery secret split among custodians (files in
    ``shares_out``). Fails naming any region it could not write, after the others."""
    try:
        out = operations.take_backup(
            ctx.env, ctx.project.root, share_count=int(shares_count),
            threshold=int(threshold), shares_out=Path(shares_out) if shares_out else None,
            progress=ctx.progress)
    except (sources.KeySourceError, store.StoreError, shares.SharesError,
            archive.ArchiveError) as exc:
        raise StepFailed(str(exc)) from None
    if out["failed"]:
        raise StepFailed(f"{out['label']} could not be written to "
                         + "; ".join(f"{r} ({why})" for r, why in out["failed"].items())
                         + f"; it was written to {', '.join(out['buckets'])}")
    shares_note = (f", {out['shares']['count']} shares (any {out['shares']['threshold']}) in "
                   f"{shares_out}" if out["shares"] else "")
    return {**out, "summary": f"{out['label']}: {len(out['keys'])} keys in "
                              f"{len(out['buckets'])} buckets{shares_note}"}
