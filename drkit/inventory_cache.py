"""A per-run cache for an environment's aws_ec2 inventory, used only while it is exact.

Every playbook parses the inventory again, and the amazon.aws.aws_ec2 plugin then
builds one boto3 client per region, which loads and decodes the EC2 API model
each time: ~1.6 s per playbook on the lab, before its first task. The plugin can
cache what EC2 returned (Ansible's inventory cache, a JSON file per source), but a
cache that outlives a change to the estate (a scale-up, a fence that stops the old
primary) would send plays to hosts that are gone or miss new ones.

So before each playbook drkit asks EC2 itself, with the inventory file's own
regions and filters, through clients it keeps for the whole run: which instances
exist, in what state, at which address, with which tags. When the cached result
describes exactly that, the playbook uses it; otherwise the cache is emptied and
the playbook asks EC2 (and caches the answer). A cache is never older than the
check made when its step started, exactly as a fresh query would be.

Only inventories whose source is one aws_ec2 file are cached; any other (static
hosts, several sources) is left alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import yaml

from drkit.env import Environment

PLUGIN_NAMES = ("amazon.aws.aws_ec2", "aws_ec2")

#: Lanes start playbooks from several threads; one check at a time.
_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str, str | None], Any] = {}


def ec2_source(inventory: Path) -> dict[str, Any] | None:
    """The inventory's aws_ec2 plugin configuration when it is the only source."""
    if not inventory.is_dir():
        return None
    sources = [p for p in inventory.iterdir() if p.is_file()
               and p.suffix in (".yml", ".yaml") and p.name != "drkit.yml"]
    configs = []
    for path in sources:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            return None
        if isinstance(data, dict) and data.get("plugin") in PLUGIN_NAMES:
            configs.append(data)
        else:
            return None  # another kind of source: not ours to cache
    return configs[0] if len(configs) == 1 else None


def fingerprint(instances: list[dict[str, Any]]) -> str:
    """What the inventory is built from, independent of where it was read."""
    rows = sorted(
        (i.get("InstanceId"), (i.get("State") or {}).get("Name"), i.get("PrivateIpAddress"),
         (i.get("Placement") or {}).get("AvailabilityZone"),
         sorted((t.get("Key"), t.get("Value")) for t in i.get("Tags") or []),
         sorted(g.get("GroupId") or "" for g in i.get("SecurityGroups") or []))
        for i in instances)
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()


def _filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in (config.get("filters") or {}).items():
        values = value if isinstance(value, list) else [value]
        out.append({"Name": str(name), "Values": [str(v) for v in values]})
    return out


def live_instances(env: Environment, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The instances the inventory would list now, asked with its regions and filters."""
    endpoint = (env.settings.get("aws") or {}).get("endpoint_url")
    found: list[dict[str, Any]] = []
    for region in config.get("regions") or []:
        key = (env.name, region, endpoint)
        if key not in _CLIENTS:
            from botocore.config import Config

            # A check must not hold a step up for long: the plugin asks anyway.
            _CLIENTS[key] = env.boto3_session(region).client(
                "ec2", endpoint_url=endpoint, config=Config(
                    connect_timeout=5, read_timeout=20, retries={"max_attempts": 2}))
        pages = _CLIENTS[key].get_paginator("describe_instances").paginate(
            Filters=_filters(config))
        found += [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    return found


def cached_instances(path: Path) -> list[dict[str, Any]] | None:
    """The instances in one cache file, or None when it cannot be read as such.

    The jsonfile cache (ansible-core 2.19) holds ``{"__payload__": "<json>"}``; the
    plugin's value is ``{"aws_ec2": [instance, ...]}``.
    """
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("__payload__"), str):
            data = json.loads(data["__payload__"])
    except (OSError, ValueError):
        return None
    if isinstance(data, dict):
        data = [i for value in data.values() if isinstance(value, list) for i in value]
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        return None
    return data


def _cached_fingerprints(cache_dir: Path) -> list[str | None]:
    out: list[str | None] = []
    for path in cache_dir.iterdir():
        instances = cached_instances(path)
        out.append(None if instances is None else fingerprint(instances))
    return out


def prepare(env: Environment, cache_dir: Path) -> dict[str, str]:
    """Environment variables that let the next playbook reuse the cached inventory
    when it is still exact (else the cache is emptied first); {} when this
    environment's inventory is not cached, or EC2 cannot be asked."""
    config = ec2_source(env.inventory)
    if config is None or config.get("cache") or config.get("exclude_filters") \
            or config.get("include_filters"):
        return {}
    with _LOCK:
        try:
            now = fingerprint(live_instances(env, config))
        except Exception:  # no check, no cache: the plugin asks EC2 itself
            shutil.rmtree(cache_dir, ignore_errors=True)
            return {}
        if cache_dir.is_dir() and any(p != now for p in _cached_fingerprints(cache_dir)):
            shutil.rmtree(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    return {
        "ANSIBLE_INVENTORY_CACHE": "True",
        "ANSIBLE_INVENTORY_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache_dir),
        # Validity is checked above, before every playbook, not by age.
        "ANSIBLE_INVENTORY_CACHE_TIMEOUT": "0",
    }
