"""Probes of the application service (app-recovery --type service-failure): which
app hosts are up while their service is not, and whether a restart brought it back.

A host whose service fails while EC2 runs it and ssh answers is a service failure:
restarting the app is the fix. A host that does not answer ssh is a node failure
(RB-DR-001 replaces it). Every host is asked at once (drkit.checks.nodes.health_of).
"""

from __future__ import annotations

from typing import Any

from drkit.checks.nodes import app_record, estate_nodes, health_of, inventory_name
from drkit.registry import StepContext, probe


def classify(nodes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """App hosts with their :func:`~drkit.checks.nodes.health`, sorted into
    ``service_failed`` (up, ssh answers, the app does not) and ``host_failed``
    (not running, or ssh does not answer). Quarantined hosts answer nothing on
    purpose and are left out. Pure."""
    apps = [n for n in nodes if n.get("role") == "app" and not n.get("quarantined")
            and n["state"] != "terminated"]
    service = [n for n in apps if not n["healthy"] and not any(
        p.startswith(("EC2 state", "ssh:", "no private IP")) for p in n["problems"])]
    host = [n for n in apps if not n["healthy"] and n not in service]
    return {"service_failed": service, "host_failed": host}


def _row(node: dict[str, Any]) -> dict[str, Any]:
    return {"id": node["id"], "ip": node["ip"], "name": inventory_name(node),
            "zone": node["zone"], "region": node["region"], "problems": node["problems"]}


@probe("app.service_failures")
def service_failures_probe(ctx: StepContext, nodes: list[str] | None = None,
                           timeout: float = 2.0) -> dict[str, Any]:
    """The app hosts whose service fails while the host is up (``failing``), those
    that are down themselves (``hosts_down``: a node failure, RB-DR-001), which of
    the failing ones app. answers with (``dns_remove``), and every host app.
    answers with. ``nodes``: only these instance ids (a re-check after a restart)."""
    found = [n for n in estate_nodes(ctx) if not nodes or n["id"] in nodes]
    sorted_out = classify(health_of([n for n in found if n.get("role") == "app"], timeout))
    answer = app_record(ctx)["addresses"]
    failing = [_row(n) for n in sorted_out["service_failed"]]
    down = [_row(n) for n in sorted_out["host_failed"]]
    return {"failing": failing, "failing_ids": [n["id"] for n in failing],
            "hosts_down": down, "hosts_down_ids": [n["id"] for n in down],
            "dns_remove": sorted(n["ip"] for n in failing if n["ip"] in answer),
            "app_addresses": sorted(answer),
            "names": ", ".join(f"{n['name']} ({n['ip']})" for n in failing) or "none"}


@probe("app.recovered")
def recovered_probe(ctx: StepContext, timeout: float = 2.0) -> dict[str, Any]:
    """Every app host answers /health (``still_failing`` names those that do not);
    with the RPO evidence: app hosts hold no data, so a restart or replacement of
    them loses none."""
    found = service_failures_probe(ctx, timeout=timeout)
    failing = found["failing"] + found["hosts_down"]
    return {"ok": not failing, "still_failing": [n["name"] for n in failing],
            "app_addresses": found["app_addresses"],
            "rpo": {"seconds": 0.0, "lost_writes": 0,
                    "detail": {"why": "app hosts hold no data; the database was not touched"}}}
