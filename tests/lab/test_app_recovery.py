"""app-recovery --type service-failure (RB-AP-001) on the real lab.

1. `lab.chaos app-kill` of a us-east app host's app (the host stays up): the app
   is restarted there, no host is replaced, the host left app. first and is back
   in it, and every host app. answered with served /health from then on.
2. The app cannot come back (another process holds its port): the restart fails,
   the host is replaced through its Auto Scaling group (RB-DR-001's playbooks),
   and app. answers with the replacement.

And a request with nothing to restart is refused with exit 2.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import pytest

from drkit.checks.dns import resolve
from drkit.errors import ExitCode
from tests.lab.runs import (
    APP,
    RESOLVER,
    AppSampler,
    app_instances,
    drkit,
    finished_at,
    health,
    result_of,
    wait,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(lab_estate):
    from tests.lab.conftest import require_site

    require_site(lab_estate)
    return lab_estate


def test_nothing_to_restart_is_refused(lab):
    proc = drkit("app-recovery", "--type", "service-failure", "--yes")
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    assert "every app host answers /health: nothing to restart" in proc.stderr


def test_a_crashed_app_is_restarted_in_place_without_a_client_noticing(lab):
    before = app_instances(lab, running=True)
    victim = sorted(before.values(), key=lambda r: r["zone"])[0]
    assert drkit("lab.chaos", "app-kill", "--host", victim["ip"]).returncode == 0
    with AppSampler(health=True) as sampler:
        proc = drkit("app-recovery", "--type", "service-failure", "--yes", "--json")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "decision: restart the app on" in proc.stderr and victim["ip"] in proc.stderr

    assert app_instances(lab, running=True).keys() == before.keys(), "a host was replaced"
    assert health(victim["ip"]) == 200
    assert sorted(resolve(APP, resolver=RESOLVER)["addresses"]) == sorted(
        r["ip"] for r in before.values())
    result = result_of(proc)
    left = finished_at(result["run_id"], "dns-out")
    assert not [f for f in sampler.failures if f[0] > left], sampler.failures[:3]
    assert result["status"] == "succeeded" and result["targets_met"] and result["rpo_s"] == 0


def test_an_app_that_does_not_come_back_gets_its_host_replaced(lab):
    before = app_instances(lab, running=True)
    victim = sorted(before.values(), key=lambda r: r["zone"])[-1]
    assert drkit("lab.chaos", "app-kill", "--host", victim["ip"]).returncode == 0
    # Something else takes the app's port: a restart cannot bring the app back.
    squatter = subprocess.Popen(
        ["ip", "netns", "exec", victim["ns"], "python3", "-m", "http.server", "8080"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait("the squatter to listen", lambda: _answers_404(victim["ip"]), 20)
        proc = drkit("app-recovery", "--type", "service-failure", "--yes", "--json")
    finally:
        squatter.kill()
        squatter.wait(timeout=10)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    now = app_instances(lab, running=True)
    assert victim["instance_id"] not in now
    new = set(now) - set(before)
    assert len(new) == 1 and len(now) == len(before), (before, now)
    replacement = now[new.pop()]
    assert replacement["zone"] == victim["zone"] and health(replacement["ip"]) == 200
    assert sorted(resolve(APP, resolver=RESOLVER)["addresses"]) == sorted(
        r["ip"] for r in now.values())
    assert result_of(proc)["status"] == "succeeded"


def _answers_404(ip: str) -> bool:
    try:
        health(ip)
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError:
        return False
    return False
