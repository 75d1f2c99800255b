"""app-recovery --type service-failure's pure decision: a host that is up while its
app fails is a service failure (restart it); one that is down is a node failure."""

from __future__ import annotations

from drkit.checks.app import classify


def _node(iid, problems, role="app", state="running", quarantined=False):
    return {"id": iid, "ip": f"10.10.1.{len(iid)}", "role": role, "state": state,
            "quarantined": quarantined, "healthy": not problems, "problems": problems}


def test_a_host_up_with_a_failing_app_is_a_service_failure_and_a_dead_host_is_not():
    nodes = [
        _node("i-ok", []),
        _node("i-app-died", ["app: /health: no answer (Connection refused)"]),
        _node("i-app-500", ["app: /health answered 500"]),
        _node("i-no-ssh", ["ssh: no answer on port 22 (timed out)",
                           "app: /health: no answer (timed out)"]),
        _node("i-stopped", ["EC2 state stopped"], state="stopped"),
        _node("i-quarantined", ["app: /health: no answer"], quarantined=True),
        _node("i-db", ["db: no answer on port 5432"], role="db"),
    ]
    out = classify(nodes)
    assert [n["id"] for n in out["service_failed"]] == ["i-app-died", "i-app-500"]
    assert [n["id"] for n in out["host_failed"]] == ["i-no-ssh", "i-stopped"]
