"""RB-DR-002 zone failover on the real lab.

`lab.chaos zone-outage` of us-east-1b (an app host's zone) under canary load,
then `zone-failover --zone us-east-1b`, killed with SIGKILL while it configures
the new host and resumed: a second run is refused while the first holds the
lock; the cut zone's host leaves app. first and no DNS answer names it
afterwards; every host app. answers with serves /health from then on; no
instance is launched into the cut zone; the region's app capacity runs in
us-east-1a; no acknowledged write is lost. Then `lab.chaos restore` and
`--restore`: the baseline is back (one app host per zone, app. answering both,
no scale-in protection left, no shift recorded).

Then the database primary's zone: `lab.chaos zone-outage --zone us-east-1a` under
canary load, `zone-failover --zone us-east-1a`: the standby in us-east-1b takes
over (db. names it, no acknowledged write lost, db. never named two hosts), the
service runs through us-east-1b, nothing is launched into the cut zone; after
`lab.chaos restore`, `--restore` rebuilds the fenced old primary as a standby and
brings the app capacity back; `lab.reset` then returns the primary to us-east-1a.

And the bad requests, each refused with exit 2 and nothing changed: a region's
only zone, --restore of a zone never shifted, a zone the estate does not have.
"""

from __future__ import annotations

import pytest

from drkit.checks.dns import resolve
from drkit.errors import ExitCode
from drkit.lab import control_plane
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
    kill_when,
    result_of,
    started_after,
    task_started,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ZONE = "us-east-1b"


def shift_recorded(zone: str = ZONE) -> bool:
    ssm = control_plane.client("ssm", "us-east-1")
    names = [p["Name"] for p in ssm.get_parameters_by_path(Path="/drkit/lab/zone-shifts")
             ["Parameters"]]
    return f"/drkit/lab/zone-shifts/{zone}" in names


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    yield lab_estate
    drkit("lab.chaos", "restore")


def test_bad_requests_change_nothing(lab):
    def state():
        running = sorted(app_instances(lab, running=True))
        return running, resolve(APP, resolver=RESOLVER)["addresses"]

    before = state()
    cases = [
        (["--zone", "ap-south-1a"], "the only zone of region ap-south still in"),
        (["--zone", ZONE, "--restore"], "was never shifted away"),
        (["--zone", "us-east-1c"], "is not one of the estate's zones"),
    ]
    for args, says in cases:
        proc = drkit("zone-failover", *args, "--yes")
        assert proc.returncode == ExitCode.BAD_INPUT, (args, proc.stdout[-1000:], proc.stderr)
        assert says in proc.stderr and "nothing was changed" in proc.stderr, (args, proc.stderr)
    assert state() == before
    assert not shift_recorded()


def test_a_cut_zone_is_shifted_away_and_brought_back_without_a_client_noticing(lab, tmp_path):
    baseline = app_instances(lab, running=True)
    known = set(app_instances(lab))  # any state: earlier tests' terminated hosts too
    assert sorted(r["zone"] for r in baseline.values()) == ["us-east-1a", ZONE], baseline
    cut = next(r for r in baseline.values() if r["zone"] == ZONE)

    second: dict = {}

    def configuring(run_id: str, since: int) -> bool:
        if "rc" not in second and started_after(run_id, "dns-out", since):
            other = drkit("zone-failover", "--zone", ZONE, "--yes")
            second.update(rc=other.returncode, said=other.stdout + other.stderr)
        return task_started("configure", "Create the app directory")(run_id, since)

    with Canary(tmp_path / "canary") as canary, AppSampler(health=True) as sampler:
        assert drkit("lab.chaos", "zone-outage", "--zone", ZONE).returncode == 0
        run_id = kill_when(["zone-failover", "--zone", ZONE, "--yes", "--json"], None,
                           "the new host's configuration", configuring, delay=0.3)
        proc = drkit("zone-failover", "--resume", run_id, "--yes", "--json", timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        canary.keep_writing()
    assert second["rc"] == ExitCode.LOCK_HELD and "lock held by" in second["said"], second

    # The capacity moved once, into us-east-1a, and nothing was launched into the cut zone.
    now = app_instances(lab, running=True)
    new = set(now) - set(baseline)
    assert len(new) == 1 and len(now) == len(baseline), (baseline, now)
    assert all(r["zone"] == "us-east-1a" for r in now.values()), now
    assert not [i for i, r in app_instances(lab).items()
                if r["zone"] == ZONE and i not in known], "a host was launched into the cut zone"
    assert shift_recorded()

    # Clients: after the cut host left app., no answer named it and every host
    # answered serves.
    left_dns = finished_at(run_id, "dns-out")
    late = [(t, a) for t, a in sampler.samples if t > left_dns and cut["ip"] in a]
    assert not late, late[:3]
    failed = [(t, ip, why) for t, ip, why in sampler.failures if t > left_dns]
    assert not failed, failed[:3]
    assert sorted(resolve(APP, resolver=RESOLVER)["addresses"]) == sorted(
        r["ip"] for r in now.values())
    report = canary.report()
    assert report["acknowledged"] > 0 and report["lost"] == 0, report
    result = result_of(proc)
    assert result["status"] == "succeeded" and result["targets_met"], result
    assert result["rpo_s"] == 0, result

    # The zone comes back: one host per zone again, the newest of us-east-1a gone.
    assert drkit("lab.chaos", "restore").returncode == 0
    with AppSampler(health=True) as sampler:
        back = drkit("zone-failover", "--zone", ZONE, "--restore", "--yes", "--json",
                     timeout=600)
    assert back.returncode == 0, (back.stdout + back.stderr)[-4000:]
    restored = app_instances(lab, running=True)
    assert sorted(r["zone"] for r in restored.values()) == ["us-east-1a", ZONE], restored
    assert not new & set(restored), "the surplus host (the newest) should have gone"
    assert sorted(resolve(APP, resolver=RESOLVER)["addresses"]) == sorted(
        r["ip"] for r in restored.values())
    assert not sampler.failures, sampler.failures[:3]
    assert not shift_recorded()
    assert result_of(back)["status"] == "succeeded"


def test_the_primarys_zone_is_shifted_by_promoting_the_standby_in_the_other_zone(
        lab, tmp_path):
    from drkit.lab import database

    zone = "us-east-1a"
    old, standby = lab.db_node("us-east"), lab.db_node("us-east-b")
    assert old["zone"] == zone and database.topology()["primary_node"] == "us-east"
    known = set(lab.view())  # every instance, any state
    with DnsSampler() as dns, Canary(tmp_path / "canary") as canary:
        assert drkit("lab.chaos", "zone-outage", "--zone", zone).returncode == 0
        proc = drkit("zone-failover", "--zone", zone, "--yes", "--json", timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        canary.keep_writing()
    assert_no_write_lost(canary.report(), dns)
    topo = database.topology()
    assert (topo["primary_node"], topo["primary_host"]) == ("us-east-b", standby["ip"]), topo
    apps = app_instances(lab, running=True)
    assert apps and all(r["zone"] == ZONE for r in apps.values()), apps
    assert sorted(resolve(APP, resolver=RESOLVER)["addresses"]) == sorted(
        r["ip"] for r in apps.values())
    launched = [i for i, r in lab.view().items() if i not in known and r.get("zone") == zone]
    assert not launched, f"launched into the cut zone: {launched}"
    result = result_of(proc)
    assert result["status"] == "succeeded" and result["rpo_s"] == 0, result
    print(f"zone-failover of the primary's zone: RTO {result['rto_s']} s")

    assert drkit("lab.chaos", "restore").returncode == 0
    back = drkit("zone-failover", "--zone", zone, "--restore", "--yes", "--json", timeout=600)
    assert back.returncode == 0, (back.stdout + back.stderr)[-4000:]
    topo = database.topology()
    rebuilt = topo["nodes"]["us-east"]
    assert rebuilt["instance_id"] != old["instance_id"] and rebuilt["streaming"], rebuilt
    assert rebuilt["receiver"]["sender_host"] == standby["ip"], rebuilt
    restored = app_instances(lab, running=True)
    assert sorted(r["zone"] for r in restored.values()) == [zone, ZONE], restored
    assert not shift_recorded(zone) and result_of(back)["status"] == "succeeded"

    assert drkit("lab.reset").returncode == 0
    assert database.topology()["primary_node"] == "us-east"
