"""The lab's compute: converge real hosts onto the EC2 instances the API reports.

Every ~0.5 s the reconciler lists the instances in each lab region (boto3 against
the configured endpoint; nothing else tells it this is a lab) and converges:

- running instance, no host      -> create the host (bridge and route as needed)
- running instance, sshd dead    -> restart sshd, unless chaos killed the node
- stopped/stopping instance      -> take the host down, keep its disk
- terminated or unknown instance -> take the host down and delete its disk

Each action is logged as one line and the whole view is written atomically to
``hosts.json`` for ``lab status`` and tests. A control plane that does not
answer changes nothing: the pass is skipped and retried (a hiccup must never
look like "every instance is gone").

Run it with ``python -m drkit.lab.reconciler``; the controller does.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from drkit.errors import LabError
from drkit.fsutil import atomic_write_json
from drkit.lab import hosts, netns, paths, security_groups
from drkit.lab.hosts import HostSpec

log = logging.getLogger("drkit.lab.reconciler")

NAME = "reconciler"
GONE_STATES = {"terminated", "shutting-down"}
DOWN_STATES = {"stopped", "stopping"}
#: What a pass asks EC2 for after the first: every state but terminated.
LIVE_FILTER = [{"Name": "instance-state-name",
                "Values": ["pending", "running", "shutting-down", "stopping", "stopped"]}]


@dataclass(frozen=True)
class Instance:
    """One EC2 instance as listed, plus the spec of its host if it can have one."""

    instance_id: str
    region: str
    state: str
    spec: HostSpec | None
    vpc_cidr: str | None
    unhostable: str | None = None  # why it cannot get a host, when it cannot
    groups: tuple[str, ...] = ()  # security group ids


def read_chaos(lab: paths.LabPaths) -> dict[str, list[str]]:
    """Chaos state: killed nodes and zones cut off (the reconciler honours them) and
    regional APIs that are down (``cloud-region/service``, the control plane does)."""
    try:
        data = json.loads(lab.chaos_json.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    return {"killed": list(data.get("killed", [])), "zones_down": list(data.get("zones_down", [])),
            "api_down": list(data.get("api_down", []))}


class Observer:
    """Lists instances in the lab regions and resolves their subnets and VPCs."""

    def __init__(self, regions: list[str], endpoint_url: str) -> None:
        from drkit.lab.control_plane import client

        self.regions = regions
        self._ec2 = {r: client("ec2", r, endpoint_url) for r in regions}
        self._subnets: dict[str, dict[str, Any]] = {}
        self._vpcs: dict[str, dict[str, Any]] = {}
        self._first = True  # the first pass lists every instance, terminated ones too
        self._live: dict[str, Instance] = {}  # listed by the last pass, not terminated
        self._ended: dict[str, Instance] = {}  # terminated: EC2 never changes them again
        self._groups: dict[str, dict[str, Any]] = {}
        self._groups_at = float("-inf")
        self._wanted: set[tuple[str, str]] = set()

    def _subnet(self, region: str, subnet_id: str) -> dict[str, Any]:
        if subnet_id not in self._subnets:
            ec2 = self._ec2[region]
            subnet = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
            self._subnets[subnet_id] = subnet
            vpc_id = subnet["VpcId"]
            if vpc_id not in self._vpcs:
                self._vpcs[vpc_id] = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
        return self._subnets[subnet_id]

    def instances(self) -> dict[str, Instance]:
        """Every instance in every lab region; raises if any region did not answer.

        Terminated instances stay listed by EC2 and pile up with every scale-down;
        serialising them is most of what each pass costs the control plane. So
        after a first full listing a pass asks for the live ones only, looks up by
        id those that left the live list (terminated, or gone), and remembers the
        terminated ones: that state is final."""
        found: dict[str, Instance] = {}
        for region in self.regions:
            for raw in self._describe(region, Filters=[] if self._first else LIVE_FILTER):
                inst = self._instance(region, raw)
                found[inst.instance_id] = inst
        left = {iid: inst for iid, inst in self._live.items() if iid not in found}
        for iid, inst in left.items():  # a few per scale-down, none in most passes
            try:
                for raw in self._describe(inst.region, InstanceIds=[iid]):
                    found[iid] = self._instance(inst.region, raw)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                    raise
        for iid, inst in found.items():
            if inst.state == "terminated":
                self._ended[iid] = inst
        self._live = {iid: inst for iid, inst in found.items() if iid not in self._ended}
        self._first = False
        return {**self._ended, **found}

    def _describe(self, region: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        pages = self._ec2[region].get_paginator("describe_instances").paginate(**kwargs)
        for page in pages:
            for reservation in page["Reservations"]:
                yield from reservation["Instances"]

    def _instance(self, region: str, raw: dict[str, Any]) -> Instance:
        iid, state = raw["InstanceId"], raw["State"]["Name"]
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
        address, subnet_id = raw.get("PrivateIpAddress"), raw.get("SubnetId")
        if not address or not subnet_id:
            return Instance(iid, region, state, None, None, "no private address or subnet")
        subnet = self._subnet(region, subnet_id)
        vpc = self._vpcs[subnet["VpcId"]]
        if vpc.get("IsDefault"):
            # Default VPCs share 172.31.0.0/16 in every region: they cannot be routed.
            return Instance(iid, region, state, None, None, "in the default VPC")
        spec = HostSpec(
            instance_id=iid, name=tags.get("Name", iid), address=address,
            subnet_cidr=subnet["CidrBlock"], zone=raw["Placement"]["AvailabilityZone"],
            region=region, role=tags.get("Role", ""), dr_region=tags.get("DrRegion", ""),
        )
        groups = tuple(sorted(g["GroupId"] for g in raw.get("SecurityGroups", [])))
        return Instance(iid, region, state, spec, vpc["CidrBlock"], groups=groups)

    def security_groups(self, wanted: set[tuple[str, str]],
                        max_age: float = 10.0) -> dict[str, dict[str, Any]]:
        """Every security group of every lab region by id. Listed again when
        ``wanted`` (the running hosts' (instance, group) pairs) changed since the
        last pass, which is how a host moved into another group or a new host shows,
        and otherwise every ``max_age`` seconds for rules changed in place: listing
        every group of every region each pass would cost the control plane more
        than all the rest of a pass."""
        now = time.monotonic()
        if wanted != self._wanted or now - self._groups_at > max_age:
            found = {}
            for region in self.regions:
                pages = self._ec2[region].get_paginator("describe_security_groups").paginate()
                for page in pages:
                    found.update({g["GroupId"]: g for g in page["SecurityGroups"]})
            self._groups, self._groups_at, self._wanted = found, now, wanted
        return self._groups


class Reconciler:
    """One converging pass at a time; ``step`` returns the decisions it took."""

    def __init__(self, lab: paths.LabPaths, observer: Observer) -> None:
        self.lab = lab
        self.observer = observer
        self._ssh_ready: dict[str, bool] = {}
        self._filters: dict[str, str | None] = {}  # instance id -> nft script applied
        self._last_view: Any = None
        self._last_error: dict[str, str] = {}

    # -- one pass ---------------------------------------------------------------

    def step(self) -> list[str]:
        """Observe, converge, write hosts.json. Returns one line per action taken."""
        try:
            instances = self.observer.instances()
        except Exception as exc:  # botocore, connection refused, moto 500: retry later
            self._note("control-plane", f"control plane did not answer ({exc}); retrying")
            return []
        self._last_error.pop("control-plane", None)
        chaos = read_chaos(self.lab)
        decisions: list[str] = []
        hosted = set(hosts.hosted_instances())
        taken: dict[str, str] = {}  # address -> instance id, to refuse duplicates
        for inst in sorted(instances.values(), key=lambda i: i.instance_id):
            try:
                decision = self._converge(inst, inst.instance_id in hosted, chaos, taken)
            except (LabError, OSError) as exc:
                self._note(inst.instance_id, f"{inst.instance_id}: {exc}")
                continue
            self._last_error.pop(inst.instance_id, None)
            if decision:
                decisions.append(decision)
        for iid in sorted(hosted - set(instances)):
            hosts.stop_host(self.lab, iid, delete_disk=True)
            decisions.append(f"{iid}: host without an instance -> removed namespace and disk")
        decisions += self._remove_orphan_disks(instances)
        decisions += self._enforce_security_groups(instances, chaos, hosted)
        for line in decisions:
            log.info("%s", line)
        self._write_view(instances, chaos)
        return decisions

    def _converge(self, inst: Instance, hosted: bool, chaos: dict[str, list[str]],
                  taken: dict[str, str]) -> str | None:
        iid, spec = inst.instance_id, inst.spec
        if inst.state == "running" and spec is not None:
            owner = taken.setdefault(spec.address, iid)
            if owner != iid:
                self._note(iid, f"{iid}: address {spec.address} already used by {owner}; "
                                "not hosting it")
                return None
            killed = iid in chaos["killed"]
            if killed:
                self._ssh_ready[iid] = False
            if not hosted:
                return self._boot(inst, killed, chaos)
            if not killed and not hosts.sshd_running(self.lab, iid):
                hosts.start_sshd(self.lab, spec)
                self._ssh_ready[iid] = False
                return f"{iid}: running, sshd not running -> restarted sshd"
            if not killed and not self._ssh_ready.get(iid):
                self._ssh_ready[iid] = hosts.ssh_answers(spec)
            return None
        if hosted and inst.state in DOWN_STATES:
            hosts.stop_host(self.lab, iid, delete_disk=False)
            self._ssh_ready.pop(iid, None)
            return f"{iid}: {inst.state} -> host down, disk kept"
        if hosted and inst.state in GONE_STATES:
            hosts.stop_host(self.lab, iid, delete_disk=True)
            self._ssh_ready.pop(iid, None)
            return f"{iid}: {inst.state} -> host down, disk deleted"
        if not hosted and inst.state in GONE_STATES and self.lab.host_dir(iid).exists():
            hosts.stop_host(self.lab, iid, delete_disk=True)
            return f"{iid}: {inst.state} -> disk deleted"
        return None

    def _enforce_security_groups(self, instances: dict[str, Instance],
                                 chaos: dict[str, list[str]], hosted: set[str]) -> list[str]:
        """Each running host filtered by its security groups (drkit.lab.security_groups);
        a host's filter is rewritten only when its groups or their rules changed.
        ``hosted``: the pass's listing, so a host booted by this pass is filtered by
        the next one, half a second later."""
        running = [i for i in instances.values() if i.state == "running" and i.spec
                   and i.instance_id in hosted and i.instance_id not in chaos["killed"]]
        try:
            groups = self.observer.security_groups(
                {(i.instance_id, g) for i in running for g in i.groups})
        except Exception as exc:  # the control plane did not answer: next pass
            self._note("security-groups", f"security groups not listed ({exc}); retrying")
            return []
        self._last_error.pop("security-groups", None)
        members: dict[str, list[str]] = {}
        for inst in running:
            for gid in inst.groups:
                members.setdefault(gid, []).append(inst.spec.address)
        decisions = []
        for inst in running:
            script = security_groups.ruleset([groups[g] for g in inst.groups if g in groups],
                                             members)
            iid = inst.instance_id
            if iid in self._filters and self._filters[iid] == script:
                continue
            try:
                security_groups.apply(inst.spec.ns, script)
            except LabError as exc:
                self._note(f"sg-{iid}", f"{iid}: {exc}")
                continue
            self._last_error.pop(f"sg-{iid}", None)
            self._filters[iid] = script
            decisions.append(f"{iid}: security groups {', '.join(inst.groups) or 'none'} -> "
                             + ("filtered" if script else "not filtered (default group)"))
        for iid in set(self._filters) - {i.instance_id for i in running}:
            del self._filters[iid]  # down, gone or killed: rewritten when it is back
        return decisions

    def _boot(self, inst: Instance, killed: bool, chaos: dict[str, list[str]]) -> str:
        spec = inst.spec
        assert spec is not None and inst.vpc_cidr is not None
        t0 = time.monotonic()
        netns.ensure_bridge(spec.zone, spec.subnet_cidr, up=spec.zone not in chaos["zones_down"])
        netns.ensure_root_route(inst.vpc_cidr)
        hosts.create_host(self.lab, spec, port_up=not killed, start_ssh=not killed)
        self._ssh_ready[spec.instance_id] = False
        note = " (node killed by chaos: no sshd)" if killed else ""
        return (f"{spec.instance_id}: running, no host -> created {spec.ns} {spec.address} on "
                f"{paths.bridge_name(spec.zone)} in {time.monotonic() - t0:.2f} s{note}")

    def _remove_orphan_disks(self, instances: dict[str, Instance]) -> list[str]:
        """Delete disks of instances that no lab region knows (a previous control plane's)."""
        decisions = []
        if not self.lab.hosts_dir.is_dir():
            return decisions
        for disk in sorted(self.lab.hosts_dir.iterdir()):
            iid = disk.name
            if iid in instances or netns.ns_exists(paths.host_ns(iid)):
                continue
            try:
                region = json.loads((disk / "host.json").read_text())["region"]
            except (FileNotFoundError, ValueError, KeyError):
                region = None
            if region is None or region in self.observer.regions:
                hosts.stop_host(self.lab, iid, delete_disk=True)
                decisions.append(f"{iid}: disk of an unknown instance -> deleted")
        return decisions

    # -- observability ----------------------------------------------------------

    def _note(self, key: str, message: str) -> None:
        """Log a problem once per change, not on every 0.5 s pass."""
        if self._last_error.get(key) != message:
            log.warning("%s", message)
            self._last_error[key] = message

    def view(self, instances: dict[str, Instance], chaos: dict[str, list[str]]) -> dict:
        hosted = set(hosts.hosted_instances())
        rows = []
        for inst in sorted(instances.values(), key=lambda i: i.instance_id):
            spec = inst.spec
            iid = inst.instance_id
            if iid in chaos["killed"] and iid in hosted:
                host_state = "killed"
            elif iid in hosted:
                host_state = "up"
            elif inst.unhostable:
                host_state = f"not hosted: {inst.unhostable}"
            else:
                host_state = "down"
            rows.append({
                "instance_id": iid, "name": spec.name if spec else iid,
                "ip": spec.address if spec else None, "region": inst.region,
                "zone": spec.zone if spec else None, "role": spec.role if spec else "",
                "dr_region": spec.dr_region if spec else "", "state": inst.state,
                "ns": paths.host_ns(iid) if iid in hosted else None,
                "host": host_state,
                "ssh_ready": bool(iid in hosted and self._ssh_ready.get(iid)),
            })
        return {"regions": self.observer.regions, "instances": rows,
                "zones_down": chaos["zones_down"], "killed": chaos["killed"]}

    def _write_view(self, instances: dict[str, Instance], chaos: dict[str, list[str]]) -> None:
        view = self.view(instances, chaos)
        if view != self._last_view:
            self.lab.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.lab.hosts_json, {**view, "written_at": time.time()})
            self._last_view = view

    # -- the loop ------------------------------------------------------------------

    def run(self, interval: float = 0.5) -> None:
        """Converge every ``interval`` seconds until SIGTERM or SIGINT."""
        stopping = threading.Event()  # a wait on it ends as soon as a signal sets it

        def _stop(signum: int, _frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("watching EC2 in %s every %.1f s", ", ".join(self.observer.regions), interval)
        while not stopping.is_set():
            t0 = time.monotonic()
            try:
                self.step()
            except Exception:  # a bug must not take every host's supervision down
                log.exception("reconcile pass failed; retrying")
            stopping.wait(max(0.0, interval - (time.monotonic() - t0)))
        log.info("stopped")


def read_view(lab: paths.LabPaths) -> dict:
    """The last hosts.json (empty view when the reconciler has not written one)."""
    try:
        return json.loads(lab.hosts_json.read_text())
    except (FileNotFoundError, ValueError):
        return {"regions": [], "instances": [], "zones_down": [], "killed": []}


def start_reconciler(lab: paths.LabPaths, regions: list[str],
                     endpoint_url: str = paths.CONTROL_PLANE_URL) -> Any:
    """Start ``python -m drkit.lab.reconciler`` in the background (root namespace)."""
    from drkit.lab.control_plane import child_env
    from drkit.lab.processes import start

    argv = [sys.executable, "-m", "drkit.lab.reconciler", "--lab-dir", str(lab.root),
            "--endpoint-url", endpoint_url, "--regions", ",".join(regions)]
    return start(NAME, argv, pid_file=lab.pid_file(NAME), log_file=lab.log_file(NAME),
                 env=child_env())


def stop_reconciler(lab: paths.LabPaths) -> str:
    from drkit.lab.processes import stop

    return stop(lab.pid_file(NAME))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m drkit.lab.reconciler", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab-dir", required=True, type=Path)
    parser.add_argument("--endpoint-url", default=paths.CONTROL_PLANE_URL)
    parser.add_argument("--regions", default=",".join(paths.DEFAULT_REGIONS.values()),
                        help="comma-separated cloud regions to watch")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--once", action="store_true", help="one pass, print decisions, exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lab = paths.LabPaths(args.lab_dir.resolve())
    hosts.ensure_ssh_material(lab)
    regions = [r for r in args.regions.split(",") if r]
    reconciler = Reconciler(lab, Observer(regions, args.endpoint_url))
    if args.once:
        for line in reconciler.step():
            print(line)
        return
    reconciler.run(args.interval)


if __name__ == "__main__":
    main()
