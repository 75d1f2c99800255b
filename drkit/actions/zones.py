"""Zone shifts (RB-DR-002): recorded in the zone's region, where the region's
Terraform module reads them on every apply (drkit.checks.zones)."""

from __future__ import annotations

from typing import Any

from drkit.checks.aws import cloud_region
from drkit.checks.zones import region_of, shift_path
from drkit.registry import StepContext, action


def _ssm(ctx: StepContext, zone: str) -> tuple[Any, str]:
    region = region_of(ctx, zone)
    if region is None:
        raise ValueError(f"zone {zone!r} is not one of the estate's zones")
    return ctx.env.client("ssm", cloud_region(ctx, region)), f"{shift_path(ctx)}/{zone}"


@action("zones.record_shift")
def record_shift(ctx: StepContext, zone: str, run_id: str) -> dict[str, Any]:
    """Record that ``zone`` is shifted away (by run ``run_id``). Idempotent: a
    resumed run rewrites the same record."""
    ssm, name = _ssm(ctx, zone)
    ssm.put_parameter(Name=name, Value=f"shifted away by drkit run {run_id}", Type="String",
                      Overwrite=True,
                      Description="RB-DR-002: the zone's app capacity runs in the other zones")
    return {"parameter": name, "summary": f"zone {zone} recorded as shifted away ({name})"}


@action("zones.clear_shift")
def clear_shift(ctx: StepContext, zone: str) -> dict[str, Any]:
    """Remove ``zone``'s shift record, so the next apply brings its capacity back.
    Idempotent: a record already gone is fine."""
    ssm, name = _ssm(ctx, zone)
    try:
        ssm.delete_parameter(Name=name)
        removed = True
    except ssm.exceptions.ParameterNotFound:
        removed = False
    return {"parameter": name, "removed": removed,
            "summary": f"zone {zone}'s shift record " + ("removed" if removed else "was gone")}
