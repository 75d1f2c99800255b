"""Bring the lab up, take it down, say what it looks like, reset it.

``up`` builds, in order: the gateway network, the control plane (moto), the DNS
resolver, the reconciler; then bootstraps Terraform's state bucket and lock
table, applies ``terraform/envs/lab`` (instances appear through Auto Scaling and
the reconciler turns them into hosts), waits for every host to answer ssh, and
runs the site playbook. Each phase is timed; the timings go to
``.drkit/lab/state.json`` and the returned dict.

``down`` removes everything the lab made (processes by pid file, every ``drk*``
namespace, the ``drk-root`` link, ``/etc/netns/drk*``, the lab directory) and
works after a failed or partial ``up``: each piece is removed if present.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from drkit.errors import LabError
from drkit.fsutil import atomic_write_json
from drkit.lab import chaos, control_plane, hosts, netns, paths, processes, reconciler, resolver

Progress = Callable[[str], None]

TERRAFORM_DIR = "terraform/envs/lab"
BACKEND_FILE = "backend.lab.hcl"
INVENTORY_DIR = "inventory/lab"
SITE_PLAYBOOK = "playbooks/site.yml"
RESET_PLAYBOOK = "playbooks/reset.yml"
#: Run by ``reset`` alongside RESET_PLAYBOOK: DNS records and the app.
RESET_SERVICE_PLAYBOOK = "playbooks/reset-service.yml"
#: The Auto Scaling groups' capacities after the last Terraform apply without
#: overrides (``{"region/group": [min, max, desired]}``), in the lab directory.
BASELINE_CAPACITY = "baseline-capacity.json"
DNS_ZONE = "lab.internal"

#: Extra status probes (e.g. PostgreSQL roles and lag), registered by their owners:
#: name -> fn(lab, view) -> dict, merged into ``status()["probes"][name]``.
STATUS_PROBES: dict[str, Callable[[paths.LabPaths, dict], dict]] = {}


def register_status_probe(name: str, fn: Callable[[paths.LabPaths, dict], dict]) -> None:
    STATUS_PROBES[name] = fn


def _quiet(_line: str) -> None:
    pass


# -- settings --------------------------------------------------------------------------


def lab_regions(project_root: Path) -> list[str]:
    """The cloud regions of the lab estate: from inventory/lab's drkit settings when
    present, else the default three."""
    settings = project_root / INVENTORY_DIR / "group_vars" / "all" / "drkit.yml"
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        import yaml

        regions = yaml.safe_load(settings.read_text())["drkit"]["regions"]
        found = [r["cloud_region"] for r in regions.values()]
        if found:
            return found
    return list(paths.DEFAULT_REGIONS.values())


def aws_env(region: str = "us-east-1") -> dict[str, str]:
    """The environment every AWS tool needs to reach the lab's control plane."""
    return {**paths.FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": paths.CONTROL_PLANE_URL,
            "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true"}


def read_backend_config(path: Path) -> dict[str, Any]:
    """``key = value`` lines of a Terraform backend file (strings and booleans)."""
    config: dict[str, Any] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value in ("true", "false"):
            config[key] = value == "true"
        else:
            config[key] = value.strip('"')
    return config


# -- phases ------------------------------------------------------------------------------


class _Timer:
    """Times named phases and reports each as it finishes."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.progress(f"{name} ...")
        t0 = time.monotonic()
        yield
        self.phases[name] = round(time.monotonic() - t0, 3)
        self.progress(f"{name}: {self.phases[name]:.2f} s")


def start_core(lab: paths.LabPaths, regions: list[str], timer: _Timer) -> None:
    """Gateway, control plane, DNS and reconciler: the lab without an estate."""
    if netns.gateway_exists():
        raise LabError(f"the lab is already up ({paths.GATEWAY_NS} exists)",
                       hint="use it, or run `lab down` first")
    lab.root.mkdir(parents=True, exist_ok=True)
    with timer.phase("gateway"):
        netns.create_gateway()
    with timer.phase("control plane"):
        control_plane.start_control_plane(lab)
    with timer.phase("dns"):
        resolver.start_resolver(lab)
    with timer.phase("reconciler"):
        hosts.ensure_ssh_material(lab)
        reconciler.start_reconciler(lab, regions)


def bootstrap_state_backend(backend: dict[str, Any]) -> None:
    """The S3 bucket and DynamoDB lock table Terraform's backend needs (idempotent)."""
    from drkit.lab.tfstate import ensure_state_backend

    region = backend.get("region", "us-west-2")
    session = boto3.session.Session(**{k.lower(): v for k, v in aws_env(region).items()
                                       if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    ensure_state_backend(paths.CONTROL_PLANE_URL, region, backend["bucket"],
                         backend.get("dynamodb_table", ""), session=session)


def apply_estate(project_root: Path, lab: paths.LabPaths, progress: Progress,
                 vars: dict[str, Any] | None = None) -> dict[str, Any]:
    """terraform init + apply of terraform/envs/lab through drkit's driver."""
    from drkit.drivers.terraform import Terraform
    from drkit.drivers.tfconfig import find_provider_mirror, write_cli_config

    module = project_root / TERRAFORM_DIR
    backend = read_backend_config(module / BACKEND_FILE)
    bootstrap_state_backend(backend)
    work = lab.root / "terraform"
    cli_config = write_cli_config(work / "terraformrc", mirror=find_provider_mirror(),
                                  plugin_cache=work / "plugin-cache")
    tf = Terraform(module, data_dir=work / "data", log_dir=lab.log_dir / "terraform",
                   env=aws_env(backend.get("region", "us-west-2")), cli_config=cli_config)
    # apply_now: one process refreshes, plans and applies (the provider starts once).
    for step, run in (("init", lambda: tf.init(backend_config=backend)),
                      ("apply", lambda: tf.ensure_init(lambda: tf.apply_now(vars=vars),
                                                       backend))):
        # A request whose answer the emulator lost and the SDK resent gets its first
        # answer (drkit.lab.moto_server's Idempotent): no apply fails on it.
        result = run()
        progress(f"  terraform {result.summary}")
        if not result.ok:
            raise LabError(f"terraform {step} of {TERRAFORM_DIR} failed: "
                           + " | ".join(result.tail[-5:]),
                           hint=f"see {result.log_path}; then `lab down`, fix, `lab up`")
    if not vars:
        atomic_write_json(lab.root / BASELINE_CAPACITY,
                          asg_capacities(lab_regions(project_root)))
    return result.outputs


def asg_capacities(regions: list[str]) -> dict[str, list[int]]:
    """``{"region/group": [min, max, desired]}`` for every Auto Scaling group."""
    return {f"{region}/{g['AutoScalingGroupName']}": [g["MinSize"], g["MaxSize"],
                                                      g["DesiredCapacity"]]
            for region in regions for g in auto_scaling_groups(region)}


def auto_scaling_groups(region: str) -> list[dict[str, Any]]:
    """Every Auto Scaling group of ``region``, as DescribeAutoScalingGroups gives them."""
    pages = control_plane.client("autoscaling", region).get_paginator(
        "describe_auto_scaling_groups").paginate()
    return [g for page in pages for g in page["AutoScalingGroups"]]


def at_baseline_capacity(project_root: Path, lab: paths.LabPaths) -> bool:
    """True when every Auto Scaling group has the capacities the last Terraform
    apply without overrides gave it (a failover's scale-up changes them; a region
    outage or a node kill does not)."""
    try:
        baseline = json.loads((lab.root / BASELINE_CAPACITY).read_text())
    except (OSError, ValueError):
        return False
    return baseline == asg_capacities(lab_regions(project_root))


def start_stopped_instances(regions: list[str]) -> list[str]:
    """Start the estate's stopped instances (an unplanned failover's fence stops the
    old primary's through the EC2 API); the reconciler then brings their hosts back."""
    lines = []
    for region in regions:
        ec2 = control_plane.client("ec2", region)
        stopped = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": "instance-state-name", "Values": ["stopped", "stopping"]}])["Reservations"]
            for i in r["Instances"]]
        if stopped:
            ec2.start_instances(InstanceIds=stopped)
            lines.append(f"started {', '.join(stopped)} in {region}")
    return lines


def delete_orphaned_launch_templates(regions: list[str]) -> list[str]:
    """Delete the launch templates no Auto Scaling group uses.

    Every template of the estate belongs to a group (modules/region, and the
    scratch restore host's group of one). A template without one is what a run
    stopped between the two creates, or a create whose answer the provider never
    got and retried, leaves behind: Terraform may not know it, and the next
    scratch host's template of the same name would fail with "already in use".
    Terraform's next refresh drops one it did know."""
    lines = []
    for region in regions:
        used = {g["LaunchTemplate"]["LaunchTemplateId"]
                for g in auto_scaling_groups(region) if g.get("LaunchTemplate")}
        ec2 = control_plane.client("ec2", region)
        for template in ec2.describe_launch_templates()["LaunchTemplates"]:
            if template["LaunchTemplateId"] not in used:
                ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
                lines.append(f"deleted launch template {template['LaunchTemplateName']} in "
                             f"{region}: no Auto Scaling group uses it")
    return lines


def clear_zone_shifts(regions: list[str]) -> list[str]:
    """Delete every zone shift recorded in the lab regions (RB-DR-002 writes
    /drkit/<estate>/zone-shifts/<zone>; the region module reads them), so the
    baseline's apply spreads app capacity over every zone again."""
    lines = []
    for region in regions:
        ssm = control_plane.client("ssm", region)
        for page in ssm.get_paginator("get_parameters_by_path").paginate(
                Path="/drkit", Recursive=True):
            for param in page["Parameters"]:
                if "/zone-shifts/" in param["Name"]:
                    ssm.delete_parameter(Name=param["Name"])
                    lines.append(f"zone shift {param['Name']} in {region} removed")
    return lines


def desired_instances(regions: list[str]) -> int:
    """How many instances the Auto Scaling groups in the lab regions want in total."""
    return sum(desired for _min, _max, desired in asg_capacities(regions).values())


def wait_hosts_ready(lab: paths.LabPaths, *, timeout: float = 90.0,
                     expect_at_least: int = 1) -> list[dict[str, Any]]:
    """Wait until the reconciler shows every running instance with sshd answering."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in reconciler.read_view(lab)["instances"] if r["state"] == "running"
                and not r["host"].startswith("not hosted")]
        if len(rows) >= expect_at_least and all(r["ssh_ready"] for r in rows):
            return rows
        if time.monotonic() > deadline:
            pending = [r["name"] for r in rows if not r["ssh_ready"]]
            raise LabError(f"hosts not ssh-ready after {timeout:.0f} s: {pending or 'none seen'}",
                           hint=f"see {lab.log_file('reconciler')}")
        time.sleep(0.1)


def run_site(project_root: Path, lab: paths.LabPaths, progress: Progress,
             playbook: str = SITE_PLAYBOOK) -> dict[str, Any]:
    """Configure the hosts (PostgreSQL, DNS records, app) with the site playbook."""
    from drkit.drivers.ansible import run_playbook

    env = {**aws_env(), "ANSIBLE_HOST_KEY_CHECKING": "False",
           "ANSIBLE_PRIVATE_KEY_FILE": str(lab.ssh_key), "DRKIT_LAB_DIR": str(lab.root)}
    result = run_playbook(project_root / playbook, inventory=project_root / INVENTORY_DIR,
                          private_data_dir=lab.root / "ansible" / Path(playbook).stem, env=env)
    progress(f"  {Path(playbook).stem}: {result.summary}")
    if not result.ok:
        raise LabError(f"{playbook} failed: " + " | ".join(result.tail[-5:]),
                       hint=f"see {result.log_path}")
    return result.outputs


def run_side_by_side(project_root: Path, lab: paths.LabPaths, progress: Progress,
                     playbooks: list[str]) -> None:
    """Run independent playbooks at the same time; raise the first failure once all
    have ended."""
    errors: list[BaseException] = []

    def one(playbook: str) -> None:
        try:
            run_site(project_root, lab, progress, playbook)
        except BaseException as exc:  # reported below, after every playbook ended
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(p,), name=Path(p).stem) for p in playbooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# -- public entry points ---------------------------------------------------------------


def up(project_root: Path, *, progress: Progress = _quiet, estate: bool = True,
       configure: bool = True) -> dict[str, Any]:
    """Build the lab. ``estate``: apply Terraform; ``configure``: run the site playbook
    (each only where its files exist in the project). Returns timings and hosts."""
    project_root = Path(project_root).resolve()
    lab = paths.LabPaths.for_project(project_root)
    regions = lab_regions(project_root)
    timer = _Timer(progress)
    t0 = time.monotonic()
    state: dict[str, Any] = {"started_at": time.time(), "regions": regions, "phases": {},
                             "etc_netns_existed": Path("/etc/netns").exists()}
    start_core(lab, regions, timer)
    _save_state(lab, state, timer)
    if estate and (project_root / TERRAFORM_DIR / "main.tf").exists():
        with timer.phase("terraform"):
            state["terraform_outputs"] = apply_estate(project_root, lab, progress)
        with timer.phase("hosts"):
            state["hosts"] = len(wait_hosts_ready(
                lab, expect_at_least=max(1, desired_instances(regions))))
    else:
        progress(f"estate skipped ({TERRAFORM_DIR} not applied)")
    if configure and estate and (project_root / SITE_PLAYBOOK).exists():
        with timer.phase("site playbook"):
            run_site(project_root, lab, progress)
    else:
        progress(f"configuration skipped ({SITE_PLAYBOOK} not run)")
    state["total_s"] = round(time.monotonic() - t0, 3)
    _save_state(lab, state, timer)
    progress(f"lab up in {state['total_s']:.1f} s")
    return {**state, "phases": timer.phases}


def _save_state(lab: paths.LabPaths, state: dict[str, Any], timer: _Timer) -> None:
    state["phases"] = dict(timer.phases)
    atomic_write_json(lab.state_json, state)


def down(project_root: Path, *, progress: Progress = _quiet) -> dict[str, Any]:
    """Remove everything the lab made; safe to run any number of times."""
    project_root = Path(project_root).resolve()
    lab = paths.LabPaths.for_project(project_root)
    timer = _Timer(progress)
    t0 = time.monotonic()
    try:
        etc_netns_existed = json.loads(lab.state_json.read_text())["etc_netns_existed"]
    except (FileNotFoundError, ValueError, KeyError):
        etc_netns_existed = None  # unknown: remove /etc/netns only if empty
    with timer.phase("processes"):
        # The reconciler first, so it does not rebuild hosts while they go.
        progress("  " + processes.stop(lab.pid_file(reconciler.NAME)))
        # Neither keeps state worth a graceful exit (moto's is in memory and goes
        # anyway), and werkzeug takes ~1 s to honour TERM: a short grace, then KILL.
        for line in processes.stop_many([lab.pid_file(resolver.NAME),
                                         lab.pid_file(control_plane.NAME)], timeout=0.3):
            progress("  " + line)
    with timer.phase("hosts"):
        for ns in netns.list_namespaces(paths.HOST_NS_PREFIX):
            netns.delete_ns(ns)
    with timer.phase("gateway"):
        netns.delete_gateway()
        for ns in netns.list_namespaces(paths.LAB_NS_PREFIX):
            netns.delete_ns(ns)
        etc = Path("/etc/netns")
        if etc.is_dir():
            for entry in etc.glob(f"{paths.LAB_NS_PREFIX}*"):
                shutil.rmtree(entry, ignore_errors=True)
            if not etc_netns_existed and not any(etc.iterdir()):
                etc.rmdir()
    with timer.phase("files"):
        shutil.rmtree(lab.root, ignore_errors=True)
    leftovers = leftovers_of(lab)
    total = round(time.monotonic() - t0, 3)
    progress(f"lab down in {total:.1f} s" + (f"; LEFT BEHIND: {leftovers}" if leftovers else ""))
    if leftovers:
        raise LabError(f"lab down left things behind: {leftovers}")
    return {"phases": timer.phases, "total_s": total}


def leftovers_of(lab: paths.LabPaths) -> list[str]:
    """Anything of the lab still present: namespaces, links, /etc/netns entries, dirs,
    routes through the gateway."""
    found = [f"namespace {ns}" for ns in netns.list_namespaces(paths.LAB_NS_PREFIX)]
    if netns.link_exists(paths.ROOT_LINK):
        found.append(f"link {paths.ROOT_LINK}")
    etc = Path("/etc/netns")
    if etc.is_dir():
        found += [f"{p}" for p in etc.glob(f"{paths.LAB_NS_PREFIX}*")]
    if lab.root.exists():
        found.append(f"directory {lab.root}")
    return found


def dns_answers(name: str = f"db.{DNS_ZONE}", timeout: float = 1.0) -> dict[str, Any]:
    """Ask the lab resolver for ``name`` (A); says whether it answered and with what."""
    from dnslib import QTYPE, RCODE, DNSRecord

    try:
        raw = DNSRecord.question(name, "A").send(paths.GATEWAY_ADDR, paths.DNS_PORT,
                                                 timeout=timeout)
    except OSError as exc:  # includes TimeoutError
        return {"answering": False, "error": str(exc)}
    reply = DNSRecord.parse(raw)
    return {"answering": True, "name": name, "rcode": RCODE[reply.header.rcode],
            "addresses": [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]}


def status(project_root: Path) -> dict[str, Any]:
    """The lab as it is: processes, hosts (from the reconciler), DNS, chaos, probes."""
    project_root = Path(project_root).resolve()
    lab = paths.LabPaths.for_project(project_root)
    procs = {}
    for name in (control_plane.NAME, resolver.NAME, reconciler.NAME):
        record = processes.read_pid_file(lab.pid_file(name))
        procs[name] = {"pid": record.pid if record else None,
                       "running": bool(record and record.matches())}
    view = reconciler.read_view(lab)
    up_now = netns.gateway_exists()
    result = {
        "up": up_now,
        "lab_dir": str(lab.root),
        "processes": procs,
        "regions": view.get("regions", []),
        "instances": view["instances"],
        "dns": dns_answers() if up_now else {"answering": False},
        "chaos": chaos.describe(lab),
        "probes": {},
    }
    for name, probe in STATUS_PROBES.items():
        try:
            result["probes"][name] = probe(lab, view)
        except Exception as exc:  # a probe's failure is status, not a crash
            result["probes"][name] = {"error": str(exc)}
    return result


def reset(project_root: Path, *, progress: Progress = _quiet) -> dict[str, Any]:
    """Return a used lab to the baseline without rebuilding it: undo chaos, re-apply
    Terraform without overrides when an Auto Scaling group is off its baseline
    (a failover's scale-up; `lab up` re-applies everything), wait for hosts, then
    the reset playbooks side by side: the database (roles back to baseline) and
    the service (DNS records, the app); the site playbook if the project has no
    reset playbook."""
    project_root = Path(project_root).resolve()
    lab = paths.LabPaths.for_project(project_root)
    if not netns.gateway_exists():
        raise LabError("the lab is not up", hint="run `lab up`")
    timer = _Timer(progress)
    t0 = time.monotonic()
    with timer.phase("chaos restore"):
        for line in chaos.restore(lab, wait_s=20.0):
            progress("  " + line)
        for line in start_stopped_instances(lab_regions(project_root)):
            progress("  " + line)
        for line in delete_orphaned_launch_templates(lab_regions(project_root)):
            progress("  " + line)
        for line in clear_zone_shifts(lab_regions(project_root)):
            progress("  " + line)
    terraform = "absent"
    if (project_root / TERRAFORM_DIR / "main.tf").exists():
        with timer.phase("terraform"):
            if at_baseline_capacity(project_root, lab):
                terraform = "not needed"
                progress("  terraform: not needed, every Auto Scaling group is at its baseline")
            else:
                terraform = "applied"
                apply_estate(project_root, lab, progress)
        with timer.phase("hosts"):
            wait_hosts_ready(lab, expect_at_least=max(1, desired_instances(
                lab_regions(project_root))))
    if (project_root / RESET_PLAYBOOK).exists():
        # The database and the service (DNS, app) converge side by side; the app
        # waits, retrying /health, for the database it needs.
        playbooks = [p for p in (RESET_PLAYBOOK, RESET_SERVICE_PLAYBOOK)
                     if (project_root / p).exists()]
        with timer.phase("reset playbooks"):
            run_side_by_side(project_root, lab, progress, playbooks)
    elif (project_root / SITE_PLAYBOOK).exists():
        with timer.phase("site playbook"):
            run_site(project_root, lab, progress)
    total = round(time.monotonic() - t0, 3)
    progress(f"lab reset in {total:.1f} s")
    return {"phases": timer.phases, "total_s": total, "terraform": terraform}
