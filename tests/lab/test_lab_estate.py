"""The full lab: status shows the estate, and Terraform and Auto Scaling really
create and remove hosts that Ansible then reaches over SSH.

That ``lab down`` leaves no namespace, link, route, process, /etc/netns entry or
directory is asserted by test_lab_network.py (test_up_then_down_leaves_nothing_behind,
test_down_cleans_up_after_a_failed_up); this file does not repeat it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from drkit import registry, steps
from drkit.env import load_environment
from drkit.lab import controller, netns, paths
from drkit.project import Project
from drkit.runbook import Step

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LAB_REGIONS = {"us-east-1", "eu-west-1", "ap-south-1"}
#: The eu-west application hosts, as the inventory groups them.
EU_WEST_APP = "region_eu_west:&role_app"

PING_PLAYBOOK = textwrap.dedent("""\
    - name: Reach the hosts over SSH and say which machine answered
      hosts: all
      gather_facts: false
      tasks:
        - name: Ping
          ansible.builtin.ping:
        - name: Read the host's own addresses
          ansible.builtin.command: hostname -I
          register: addresses
          changed_when: false
        - name: Publish them
          ansible.builtin.set_stats:
            data:
              drkit_outputs:
                addresses: "{{ addresses.stdout.split() }}"
    """)


def _project(estate) -> Project:
    return Project(root=estate.project_root, state_dir=estate.paths.root / "state")


def terraform_step(estate, step_id: str, vars: dict) -> steps.StepOutcome:
    """Run a `terraform` runbook step on terraform/envs/lab exactly as the engine
    does (the lab environment's endpoint, credentials and backend settings)."""
    project = _project(estate)
    env = load_environment(project, "lab")
    run_dir = project.runs_dir / f"test-{step_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    step = Step(id=step_id, title=step_id, kind="terraform",
                spec={"dir": controller.TERRAFORM_DIR, "vars": vars, "action": "apply"},
                when=None, timeout_s=300, marks_start=(), marks_finish=(), phase="main",
                path="steps[0]", line=1)
    rt = steps.Runtime(ctx=registry.StepContext(env=env, project=project, run_dir=run_dir),
                       template_ctx={}, yes=True, interactive=False, timeout_s=300,
                       activity=lambda _text: None, ask=lambda _prompt: False)
    outcome = steps.execute(step, step.spec, rt)
    assert outcome.ok, f"{step_id}: {outcome.summary}\n" + "\n".join(outcome.tail)
    return outcome


def scale_eu_west_app(estate, count: int) -> None:
    terraform_step(estate, f"scale-eu-west-app-{count}",
                   {"capacity_overrides": {"eu-west": {"app": count}}})


def _eu_west_app_hosts(estate) -> dict[str, dict]:
    return {r["instance_id"]: r for r in estate.hosts(role="app", dr_region="eu-west")}


def test_status_shows_three_regions_six_ssh_ready_hosts_and_dns(lab_estate):
    """`drkit lab.status --json` (the operator's view) after `lab up`."""
    proc = subprocess.run([sys.executable, "-m", "drkit", "lab.status", "--json"],
                          cwd=lab_estate.project_root, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "DRKIT_PROJECT":
                                           str(lab_estate.project_root)})
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)

    assert status["up"]
    assert all(p["running"] for p in status["processes"].values()), status["processes"]
    running = [r for r in status["instances"] if r["state"] == "running"]
    assert {r["region"] for r in running} == LAB_REGIONS
    assert len(running) >= 6
    assert [r["name"] for r in running if not r["ssh_ready"]] == []
    assert {(r["dr_region"], r["role"]) for r in running} >= {
        ("us-east", "db"), ("eu-west", "db"), ("ap-south", "db"), ("us-east", "app")}
    assert status["dns"]["answering"], status["dns"]
    if lab_estate.configured:
        primary = lab_estate.host(role="db", dr_region="us-east")
        assert status["dns"]["addresses"] == [primary["ip"]], status["dns"]


def test_terraform_scales_eu_west_app_hosts_that_ansible_reaches(lab_estate, tmp_path):
    """0 -> 2 app instances in eu-west-1 with Terraform gives two real hosts that an
    Ansible play reaches through the aws_ec2 inventory; 2 -> 0 takes them away."""
    from drkit.drivers.ansible import run_playbook

    estate = lab_estate
    env = load_environment(_project(estate), "lab")
    try:
        scale_eu_west_app(estate, 0)
        estate.wait_for("eu-west app hosts to go", lambda: not _eu_west_app_hosts(estate),
                        timeout=60)

        scale_eu_west_app(estate, 2)
        estate.wait_for("two ssh-ready eu-west app hosts", lambda: len(
            [r for r in _eu_west_app_hosts(estate).values() if r["ssh_ready"]]) == 2,
            timeout=60)
        created = _eu_west_app_hosts(estate)
        assert {r["zone"] for r in created.values()} == {"eu-west-1a", "eu-west-1b"}

        playbook = tmp_path / "ping.yml"
        playbook.write_text(PING_PLAYBOOK)
        result = run_playbook(playbook, inventory=env.inventory, limit=EU_WEST_APP,
                              private_data_dir=tmp_path / "ansible",
                              env=env.process_env(), timeout=180)
        assert result.ok, f"{result.summary}\n" + "\n".join(result.tail)
        stats = result.outputs["stats"]
        assert len(stats) == 2 and all(s["unreachable"] == 0 and s["failed"] == 0
                                       for s in stats.values()), stats
        answered = {a for facts in result.outputs["facts"].values()
                    for a in facts["addresses"]}
        assert answered == {r["ip"] for r in created.values()}

        scale_eu_west_app(estate, 0)
        estate.wait_for("the two eu-west app hosts to go", lambda: not any(
            r["instance_id"] in created for r in estate.hosts()), timeout=60)
        for iid in created:
            assert estate.view().get(iid, {}).get("state") != "running"
            assert not netns.ns_exists(paths.host_ns(iid))
            assert not Path("/etc/netns", paths.host_ns(iid)).exists()
    finally:
        # Back to the baseline: capacities at defaults (and, with the site playbook,
        # the new app host configured and DNS back on the baseline).
        controller.reset(estate.project_root)
    assert len(_eu_west_app_hosts(estate)) == 1
    if estate.configured:  # the host Auto Scaling added during the reset runs the app too
        for app in estate.hosts(role="app"):
            with urllib.request.urlopen(f"http://{app['ip']}:8080/health", timeout=10) as resp:
                assert resp.status == 200, app
