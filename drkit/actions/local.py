"""Actions on the machine drkit runs on."""

from __future__ import annotations

import time
from typing import Any

from drkit.registry import StepContext, action


@action("local.wait")
def wait(ctx: StepContext, seconds: float) -> dict[str, Any]:
    """Wait, reporting progress each second (used by drills and tests to hold a step open)."""
    deadline = time.monotonic() + float(seconds)
    while (left := deadline - time.monotonic()) > 0:
        ctx.progress(f"waiting, {left:.0f}s left")
        time.sleep(min(1.0, left))
    return {"waited_s": float(seconds)}


@action("local.fail")
def fail(ctx: StepContext, message: str = "failed on purpose") -> dict[str, Any]:
    """Fail with a message (drills of the failure path)."""
    raise RuntimeError(message)


@action("local.write_marker")
def write_marker(ctx: StepContext, path: str, text: str = "") -> dict[str, Any]:
    """Write a marker file (drills leave evidence of having run). Idempotent."""
    target = ctx.project.path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text or f"written by run {ctx.run_dir.name}\n")
    return {"path": str(target), "summary": f"wrote {target}"}
