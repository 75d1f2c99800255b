"""An environment: an Ansible inventory directory plus drkit's settings for it.

``inventory/<env>/`` is what Ansible reads; ``group_vars/all/drkit.yml`` (key
``drkit:``) tells drkit the regions, the AWS endpoint, the lock backend, the
notification channels and per-runbook target overrides. Every problem in the
settings is reported at once with its dotted path.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drkit import topology
from drkit.durations import parse_duration
from drkit.errors import ConfigError
from drkit.keys import settings as keys_settings
from drkit.notify import settings as notify_settings
from drkit.project import Project
from drkit.redact import is_secret_key, register_secret
from drkit.rehearsals import settings_problems as rehearsal_problems

SETTINGS_FILE = Path("group_vars/all/drkit.yml")
DEFAULT_ENV = "lab"

_TOP_KEYS = {
    "estate", "aws", "control_region", "terraform", "regions", "dns", "targets",
    "notify", "severities", "lock", "lab", "postgres", "backup", "keys", "rehearsals",
    "quarantine",
}
_REGION_ROLES = {"primary", "hot-standby", "warm-standby", "standby"}
_LOCK_BACKENDS = {"file", "dynamodb"}


@dataclass(frozen=True)
class Environment:
    """A loaded, validated environment."""

    name: str
    path: Path
    settings: dict[str, Any]

    @property
    def inventory(self) -> Path:
        return self.path

    @property
    def regions(self) -> dict[str, dict[str, Any]]:
        return self.settings.get("regions", {})

    def region(self, name: str) -> dict[str, Any]:
        """Settings of one region by its logical name, or a ConfigError naming the known ones."""
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(sorted(self.regions)) or "none"
            raise ConfigError(
                f"unknown region '{name}' in environment {self.name}",
                hint=f"use one of: {known}",
            ) from None

    def process_env(self) -> dict[str, str]:
        """Environment variables through which boto3, Terraform and Ansible reach
        this estate's AWS APIs (endpoint, credentials, default region)."""
        aws = self.settings.get("aws", {})
        out: dict[str, str] = {}
        if aws.get("endpoint_url"):
            out["AWS_ENDPOINT_URL"] = str(aws["endpoint_url"])
        for key, value in (aws.get("env") or {}).items():
            out[str(key)] = str(value)
        if "control_region" in self.settings:
            out.setdefault("AWS_DEFAULT_REGION", str(self.settings["control_region"]))
            out.setdefault("AWS_REGION", out["AWS_DEFAULT_REGION"])
        return out

    def boto3_session(self, region: str | None = None) -> Any:
        """A boto3 Session with this estate's credentials (``aws.env``), if any."""
        import boto3

        penv = self.process_env()
        return boto3.Session(
            aws_access_key_id=penv.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=penv.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=penv.get("AWS_SESSION_TOKEN"),
            region_name=region or penv.get("AWS_DEFAULT_REGION"),
        )

    def client(self, service: str, region: str | None = None, config: Any = None) -> Any:
        """A boto3 client for ``service`` in ``region`` (a cloud region name),
        through this estate's endpoint when one is set; ``config`` is botocore's
        (timeouts, retries)."""
        aws = self.settings.get("aws") or {}
        return self.boto3_session(region).client(service, endpoint_url=aws.get("endpoint_url"),
                                                 config=config)

    def regions_primary_first(self) -> list[str]:
        """Logical regions, the one whose role is primary first (where a secret's copy
        is read first: another region may be the one that is down)."""
        return sorted(self.regions, key=lambda r: (self.regions[r].get("role") != "primary", r))

    def targets_for(self, runbook_id: str) -> dict[str, float]:
        """Per-runbook target overrides in seconds: {'rto': .., 'rpo': ..} (possibly empty)."""
        raw = (self.settings.get("targets") or {}).get(runbook_id) or {}
        return {k: parse_duration(v) for k, v in raw.items()}

    def template_context(self) -> dict[str, Any]:
        """What runbook templates see as ``env``."""
        return {"name": self.name, **self.settings}


def load_environment(project: Project, ref: str | None = None) -> Environment:
    """Load ``ref`` (a name under inventory/, or a path to an inventory directory;
    default DRKIT_ENV, then 'lab')."""
    ref = ref or os.environ.get("DRKIT_ENV") or DEFAULT_ENV
    candidate = Path(ref)
    path = candidate if candidate.is_dir() and ("/" in ref or candidate.is_absolute()) \
        else project.inventory_dir / ref
    if not path.is_dir():
        known = sorted(p.name for p in project.inventory_dir.glob("*") if p.is_dir())
        raise ConfigError(
            f"unknown environment '{ref}': {path} does not exist",
            hint=f"use --env with one of: {', '.join(known) or 'none'} (or DRKIT_ENV)",
        )
    settings_path = path / SETTINGS_FILE
    if not settings_path.is_file():
        raise ConfigError(
            f"environment '{ref}' has no drkit settings: {settings_path} is missing",
            hint="create it with a top-level `drkit:` mapping (see docs/internals.md)",
        )
    try:
        doc = yaml.safe_load(settings_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{settings_path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("drkit"), dict):
        raise ConfigError(
            f"{settings_path}: expected a top-level `drkit:` mapping",
            hint="put drkit's settings under the key `drkit:`",
        )
    settings = doc["drkit"]
    problems = validate_settings(settings, project.root)
    if problems:
        raise ConfigError(
            f"environment '{ref}' has {len(problems)} problem(s) in {settings_path}",
            problems=problems,
        )
    _register_secrets(settings)
    # The estate names the environment (its lock, its runs): two inventories of one
    # estate share a lock. Without one, the directory name does.
    name = str(settings.get("estate") or path.name)
    return Environment(name=name, path=path.resolve(), settings=settings)


def _register_secrets(node: Any, key: str = "") -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _register_secrets(v, str(k))
    elif isinstance(node, list):
        for v in node:
            _register_secrets(v, key)
    elif key and is_secret_key(key):
        register_secret(node)


def validate_settings(s: dict[str, Any], project_root: Path | None = None) -> list[str]:
    """Every problem in a settings mapping, each prefixed with its dotted path
    (with ``project_root``, the notification templates it names are rendered too)."""
    problems: list[str] = []

    def need_map(value: Any, path: str) -> bool:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return False
        return True

    def unknown(mapping: dict, allowed: set[str], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                problems.append(
                    f"{path}.{key}: unknown key; expected one of: {', '.join(sorted(allowed))}"
                )

    unknown(s, _TOP_KEYS, "drkit")
    if "aws" in s and need_map(s["aws"], "drkit.aws"):
        unknown(s["aws"], {"endpoint_url", "env"}, "drkit.aws")
        if "env" in s["aws"]:
            need_map(s["aws"]["env"], "drkit.aws.env")
    regions = s.get("regions")
    if regions is None:
        problems.append("drkit.regions: missing; list the estate's regions")
    elif need_map(regions, "drkit.regions"):
        primaries = []
        for name, region in regions.items():
            path = f"drkit.regions.{name}"
            if not need_map(region, path):
                continue
            unknown(region, {"cloud_region", "role", "zones", "db_zones"}, path)
            if not isinstance(region.get("cloud_region"), str):
                problems.append(f"{path}.cloud_region: missing or not a string")
            role = region.get("role")
            if role not in _REGION_ROLES:
                problems.append(
                    f"{path}.role: {role!r} is not one of {', '.join(sorted(_REGION_ROLES))}"
                )
            if role == "primary":
                primaries.append(name)
            zones = region.get("zones", [])
            if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
                problems.append(f"{path}.zones: expected a list of zone names")
        problems += topology.problems(regions)
        if len(primaries) != 1:
            problems.append(
                f"drkit.regions: exactly one region must have role primary, found "
                f"{len(primaries)} ({', '.join(primaries) or 'none'})"
            )
    for name, tgt in (s.get("targets") or {}).items():
        path = f"drkit.targets.{name}"
        if not need_map(tgt, path):
            continue
        unknown(tgt, {"rto", "rpo"}, path)
        for key in ("rto", "rpo"):
            if key in tgt:
                try:
                    parse_duration(tgt[key])
                except ValueError as exc:
                    problems.append(f"{path}.{key}: {exc}")
    problems += notify_settings.problems(s, project_root)
    lock = s.get("lock")
    if lock is not None and need_map(lock, "drkit.lock"):
        if lock.get("backend", "file") not in _LOCK_BACKENDS:
            problems.append(
                f"drkit.lock.backend: {lock.get('backend')!r} is not one of "
                f"{', '.join(sorted(_LOCK_BACKENDS))}"
            )
        if lock.get("backend") == "dynamodb" and not lock.get("table"):
            problems.append("drkit.lock.table: missing; the dynamodb backend needs a table")
    pg = s.get("postgres")
    if pg is not None and need_map(pg, "drkit.postgres"):
        unknown(pg, {"synchronous_regions", "synchronous_in_region", "archive"}, "drkit.postgres")
        for key in ("archive", "synchronous_in_region"):
            if not isinstance(pg.get(key, True), bool):
                problems.append(f"drkit.postgres.{key}: expected true or false")
        sync = pg.get("synchronous_regions", [])
        if not isinstance(sync, list):
            problems.append("drkit.postgres.synchronous_regions: expected a list of regions")
        elif isinstance(regions, dict):
            for r in sync:
                if r not in regions:
                    problems.append(f"drkit.postgres.synchronous_regions: {r!r} is not one of "
                                    f"the regions ({', '.join(sorted(regions))})")
    if "backup" in s and need_map(s["backup"], "drkit.backup"):
        problems += _backup_problems(s["backup"], regions if isinstance(regions, dict) else {})
    if "keys" in s:
        problems += keys_settings.problems(s["keys"])
    if "quarantine" in s and need_map(s["quarantine"], "drkit.quarantine"):
        unknown(s["quarantine"], {"bastion_cidrs"}, "drkit.quarantine")
        cidrs = s["quarantine"].get("bastion_cidrs")
        if not isinstance(cidrs, list) or not cidrs:
            problems.append("drkit.quarantine.bastion_cidrs: list the networks the bastion "
                            "reaches hosts from (e.g. [10.0.0.0/28])")
        else:
            for i, cidr in enumerate(cidrs):
                try:
                    ipaddress.ip_network(str(cidr))
                except ValueError:
                    problems.append(f"drkit.quarantine.bastion_cidrs[{i}]: {cidr!r} is not a "
                                    "network (e.g. 10.0.0.0/28)")
    if "rehearsals" in s:
        problems += rehearsal_problems(s["rehearsals"], s.get("notify"))
    for key in ("terraform", "dns", "lab"):
        if key in s:
            need_map(s[key], f"drkit.{key}")
    return problems


_BACKUP_KEYS = {"stanza", "repositories", "s3", "tls", "max_age", "config_retention", "estate"}
_REPO_KEYS = {"region", "retention_full", "retention_diff"}
_S3_KEYS = {"endpoint", "port", "uri_style", "ca_file", "key_type"}
_TLS_KEYS = {"ca_file", "ca_key_file", "port"}


def _backup_problems(b: dict[str, Any], regions: dict[str, Any]) -> list[str]:
    """Problems in ``drkit.backup`` (pgBackRest repositories and limits), dotted paths."""
    problems = [f"drkit.backup.{k}: unknown key; expected one of: {', '.join(sorted(_BACKUP_KEYS))}"
                for k in b if k not in _BACKUP_KEYS]
    owner = b.get("estate", "")
    if not isinstance(owner, str) or (owner and not owner.replace("-", "").isalnum()):
        problems.append("drkit.backup.estate: expected the name of the estate whose buckets "
                        "hold the backups (letters, digits and -)")
    stanza = b.get("stanza")
    if not isinstance(stanza, str) or not stanza.replace("-", "").replace("_", "").isalnum():
        problems.append("drkit.backup.stanza: missing or not a name (letters, digits, - and _)")
    repos = b.get("repositories")
    if not isinstance(repos, list) or not repos:
        problems.append("drkit.backup.repositories: expected a non-empty list of "
                        "{region: ..., retention_full: N}")
        repos = []
    seen = set()
    for i, repo in enumerate(repos):
        path = f"drkit.backup.repositories[{i}]"
        if not isinstance(repo, dict):
            problems.append(f"{path}: expected a mapping")
            continue
        problems += [f"{path}.{k}: unknown key; expected one of: {', '.join(sorted(_REPO_KEYS))}"
                     for k in repo if k not in _REPO_KEYS]
        region = repo.get("region")
        if region not in regions:
            problems.append(f"{path}.region: {region!r} is not one of the regions "
                            f"({', '.join(sorted(regions))})")
        elif region in seen:
            problems.append(f"{path}.region: {region} has a repository already")
        seen.add(region)
        for key in ("retention_full", "retention_diff"):
            value = repo.get(key)
            if (key in repo or key == "retention_full") and not (
                    isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                problems.append(f"{path}.{key}: expected a whole number >= 1, got {value!r}")
    s3 = b.get("s3")
    if s3 is not None:
        if not isinstance(s3, dict):
            problems.append("drkit.backup.s3: expected a mapping")
        else:
            problems += [f"drkit.backup.s3.{k}: unknown key; expected one of: "
                         f"{', '.join(sorted(_S3_KEYS))}" for k in s3 if k not in _S3_KEYS]
            if s3.get("key_type", "shared") not in ("shared", "auto"):
                problems.append(f"drkit.backup.s3.key_type: {s3.get('key_type')!r} is not "
                                "shared (the estate's AWS keys) or auto (instance profile)")
            if s3.get("uri_style", "host") not in ("host", "path"):
                problems.append(f"drkit.backup.s3.uri_style: {s3.get('uri_style')!r} is not "
                                "host or path")
    problems += _backup_tls_problems(b.get("tls"))
    for key in ("max_age", "config_retention"):
        if key in b:
            try:
                parse_duration(b[key])
            except ValueError as exc:
                problems.append(f"drkit.backup.{key}: {exc}")
    return problems


def _backup_tls_problems(tls: Any) -> list[str]:
    """Problems in ``drkit.backup.tls``: the estate CA that signs each db host's
    certificate for pgBackRest's TLS server (backups taken from a standby)."""
    if tls is None:
        return []
    if not isinstance(tls, dict):
        return ["drkit.backup.tls: expected a mapping {ca_file, ca_key_file, port}"]
    allowed = ", ".join(sorted(_TLS_KEYS))
    problems = [f"drkit.backup.tls.{k}: unknown key; expected one of: {allowed}"
                for k in tls if k not in _TLS_KEYS]
    for key in ("ca_file", "ca_key_file"):
        if not isinstance(tls.get(key), str) or not tls[key].strip():
            problems.append(f"drkit.backup.tls.{key}: expected a path on the control node "
                            "(the estate CA's certificate and its key)")
    port = tls.get("port", 8432)
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        problems.append(f"drkit.backup.tls.port: expected a port 1-65535, got {port!r}")
    return problems
