"""Probes of a rebuild rehearsal's scratch estate (drkit.scratch)."""

from __future__ import annotations

from typing import Any

from drkit.registry import StepContext, probe
from drkit.scratch import confinement_problems


@probe("rehearsal.confined")
def confined_probe(ctx: StepContext) -> dict[str, Any]:
    """Whether this environment is a scratch estate apart from the live one it was
    made from (``drkit.rehearsals.live``): its own name, DNS zone, Terraform state
    and secrets, and no WAL archived into the live repositories."""
    live_names = (ctx.env.settings.get("rehearsals") or {}).get("live")
    if not live_names:
        return {"ok": False, "problems": ["this environment is not a rehearsal's scratch "
                                          "estate (no drkit.rehearsals.live); run it with "
                                          "drkit rehearse rebuild"]}
    backend = (ctx.env.settings.get("terraform") or {}).get("backend_config") or {}
    live = {"estate": live_names.get("estate"), "dns": {"zone": live_names.get("zone")},
            "terraform": {"backend_config": {"bucket": backend.get("bucket"),
                                             "key": live_names.get("state_key")}}}
    problems = confinement_problems(live, ctx.env.settings)
    return {"ok": not problems, "problems": problems, "live": live_names}
