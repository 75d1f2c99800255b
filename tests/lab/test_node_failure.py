"""RB-DR-001 node failure on the real lab, in two scenarios:

1. `lab.chaos node-kill` of an app host, then `replace-node --auto`, killed with
   SIGKILL once the dead node is terminated, and resumed: a second run is
   refused while the first holds the lock; the dead host leaves app. before
   anything else happens and no DNS answer names it afterwards (a sampler asks
   the lab's resolver all along); its Auto Scaling group replaced it exactly
   once; the replacement answers /health, through DNS too; capacity is back to
   the baseline and the report says RTO and RPO.
2. node-kill of eu-west's database node (the synchronous standby) under canary
   load, then `replace-node --host`, killed during the base backup and resumed:
   no acknowledged write is lost, the primary's writes resume once it stops
   waiting for the dead standby, the replacement streams from the primary as the
   synchronous standby again.

3. node-kill of us-east's database primary under canary load, then the
   operator's database entry point, `db-recovery --scenario primary-failure`,
   which picks RB-DR-001 (replace-node of the dead node) because the primary's
   in-region standby answers; killed while its promote step catches the
   in-region standby up, and resumed with `replace-node --resume`: the in-region
   standby (us-east-b) is the primary,
   promoted once, no acknowledged write lost, the longest write gap reported;
   db. never named two hosts (sampled throughout); the dead node's replacement
   streams from the new primary; no instance left over.

And the bad requests change nothing (a healthy primary needs --force).

What it leaves behind: the baseline capacity (new app and db instances), app.
answering both app hosts, the baseline primary back (lab.reset after scenario 3).
"""

from __future__ import annotations

import pytest

from drkit.checks.dns import resolve
from drkit.errors import ExitCode
from tests.lab.runs import (
    APP,
    RESOLVER,
    AppSampler,
    Canary,
    DnsSampler,
    app_instances,
    assert_no_write_lost,
    drkit,
    finished_at,
    health,
    journal,
    kill_when,
    result_of,
    started_after,
    task_started,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    yield lab_estate
    drkit("lab.chaos", "restore")


def test_bad_requests_change_nothing(lab):
    before = (sorted(app_instances(lab)), resolve(APP, resolver=RESOLVER)["addresses"])
    healthy = lab.hosts(role="app", dr_region="us-east")[0]
    db = lab.host(role="db", dr_region="us-east")
    cases = [
        (["--host", "i-0000000000nosuch"], "no node of the estate matches"),
        (["--host", "lab-us-east-app"], "names 2 nodes"),
        (["--host", healthy["instance_id"]], "is healthy"),
        (["--host", db["ip"]], "is healthy"),
        (["--auto"], "every node is healthy"),
    ]
    for args, says in cases:
        proc = drkit("replace-node", *args, "--yes")
        assert proc.returncode == ExitCode.BAD_INPUT, (args, proc.stdout[-1000:], proc.stderr)
        assert says in proc.stderr and "nothing was changed" in proc.stderr, (args, proc.stderr)
    assert (sorted(app_instances(lab)), resolve(APP, resolver=RESOLVER)["addresses"]) == before


def test_a_killed_app_host_is_replaced_once_and_never_answered_after_it_left_dns(lab):
    dead = next(h for h in lab.hosts(role="app", dr_region="us-east")
                if h["zone"].endswith("a"))
    baseline = {i for i, r in app_instances(lab).items() if r["state"] == "running"}
    assert drkit("lab.chaos", "node-kill", "--host", dead["instance_id"]).returncode == 0

    second: dict = {}

    def terminated(run_id: str, since: int) -> bool:
        if "rc" not in second and started_after(run_id, "dns-out", since):
            other = drkit("replace-node", "--auto", "--yes")
            second.update(rc=other.returncode, said=other.stdout + other.stderr)
        return task_started("replace", "Wait until each group runs its desired count, "
                            "none of them a failed node")(run_id, since)

    with AppSampler() as sampler:
        run_id = kill_when(["replace-node", "--auto", "--yes", "--json"], None,
                           "the dead node's termination", terminated, delay=0.5)
        proc = drkit("replace-node", "--resume", run_id, "--yes", "--json", timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert second["rc"] == ExitCode.LOCK_HELD and "lock held by" in second["said"], second

    # Replaced exactly once: the dead node is gone, one new instance took its place.
    now = app_instances(lab)
    running = {i for i, r in now.items() if r["state"] == "running"}
    assert dead["instance_id"] not in running
    new = running - baseline
    assert len(new) == 1 and len(running) == len(baseline), (baseline, running)
    replacement = now[new.pop()]
    assert replacement["zone"] == dead["zone"]
    assert health(replacement["ip"]) == 200

    # DNS: app. answers with the replacement and the surviving host, and no
    # sample after the dead host left DNS named it.
    answer = resolve(APP, resolver=RESOLVER)["addresses"]
    assert sorted(answer) == sorted(now[i]["ip"] for i in running), answer
    left_dns = finished_at(run_id, "dns-out")
    late = [(t, a) for t, a in sampler.samples if t > left_dns and dead["ip"] in a]
    assert not late, late[:3]
    assert any(t < left_dns and dead["ip"] in a for t, a in sampler.samples)

    result = result_of(proc)
    assert result["status"] == "succeeded" and result["targets_met"], result
    assert result["rto_s"] is not None and result["rpo_s"] == 0, result


def test_a_killed_synchronous_standby_is_rebuilt_without_losing_a_write(lab, tmp_path):
    from drkit.lab import database

    dead = lab.host(role="db", dr_region="eu-west")
    primary = lab.host(role="db", dr_region="us-east")
    with Canary(tmp_path / "canary") as canary:
        assert drkit("lab.chaos", "node-kill", "--host", dead["ip"]).returncode == 0
        run_id = kill_when(["replace-node", "--host", dead["ip"], "--yes", "--json"], None,
                           "the base backup", task_started(
                               "rebuild", "Take a base backup of the primary through the "
                               "replica's slot"), delay=0.3)
        proc = drkit("replace-node", "--resume", run_id, "--yes", "--json", timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        canary.keep_writing()
    report = canary.report()
    print(f"canary: {report['acknowledged']} acknowledged, {report['lost']} lost, longest "
          f"write gap {report['write_unavailable_s']} s")
    assert report["acknowledged"] > 0 and report["lost"] == 0, report

    node = database.topology()["nodes"]["eu-west"]
    assert node["instance_id"] != dead["instance_id"] and node["streaming"], node
    assert node["receiver"]["sender_host"] == primary["ip"], node
    assert node["sync_state"] == "sync", node
    result = result_of(proc)
    assert result["status"] == "succeeded" and result["rpo_s"] == 0, result
    said = [e for e in journal(run_id) if e["event"] == "step_output" and e["step"] == "sync-out"]
    assert said, "the primary was never told to stop waiting for the dead standby"


def test_a_killed_primary_is_taken_over_by_its_in_region_standby_without_losing_a_write(
        lab, tmp_path):
    from drkit.lab import database

    dead, standby = lab.db_node("us-east"), lab.db_node("us-east-b")
    timeline = database.topology()["nodes"]["us-east"]["timeline"]
    with DnsSampler() as dns, Canary(tmp_path / "canary") as canary:
        assert drkit("lab.chaos", "node-kill", "--host", dead["ip"]).returncode == 0
        run_id = kill_when(["db-recovery", "--scenario", "primary-failure", "--yes", "--json"],
                           None, "the standby's catch-up", task_started(
                               "promote", "Read how much WAL each standby has received"),
                           delay=0.2)
        assert run_id.endswith("-RB-DR-001"), run_id
        decided = [e["text"] for e in journal(run_id) if e["event"] == "decision"]
        assert any(t.startswith("db-recovery decided: primary-failure: the primary in us-east "
                                f"({dead['ip']}) does not answer; us-east-b, its in-region "
                                "standby, answers") for t in decided), decided
        proc = drkit("replace-node", "--resume", run_id, "--yes", "--json", timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        canary.keep_writing()
    assert_no_write_lost(canary.report(), dns)

    topo = database.topology()
    assert (topo["primary_node"], topo["primary_host"]) == ("us-east-b", standby["ip"]), topo
    assert topo["nodes"]["us-east-b"]["timeline"] == timeline + 1  # promoted once
    new = topo["nodes"]["us-east"]
    assert new["instance_id"] != dead["instance_id"] and new["streaming"], new
    assert new["receiver"]["sender_host"] == standby["ip"], new
    assert all(topo["nodes"][k]["streaming"] for k in topo["replicas"]), topo["nodes"]
    assert len(lab.hosts(role="db", dr_region="us-east")) == 2
    result = result_of(proc)
    assert result["status"] == "succeeded" and result["rpo_s"] == 0, result
    print(f"replace-node (primary): RTO {result['rto_s']} s")

    assert drkit("lab.reset").returncode == 0
    assert database.topology()["primary_node"] == "us-east"
