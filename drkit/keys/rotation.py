"""Rotating a key kept in Secrets Manager, every region's copy, with the rotation
protocol's staging labels (RB-DR-005, docs/internals.md "Key compromise"):

1. ``stage``: the new value is written to every region as a version labelled
   AWSPENDING whose id is derived from the run (``version_id``), so a resumed run
   finds it again instead of making another;
2. the consumers of the old value are moved (playbooks; not here);
3. ``promote``: AWSCURRENT moves to the new version in every region (the old one
   keeps AWSPREVIOUS in a planned rotation; after a compromise it loses every
   label, so nothing can fetch it by stage).

Values never leave this module except to Secrets Manager and drkit.redact; what
is returned (and journaled) is version ids and regions.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from drkit.keys.sources import KeySource, key_sources
from drkit.redact import register_secret

PENDING, CURRENT, PREVIOUS = "AWSPENDING", "AWSCURRENT", "AWSPREVIOUS"
#: Secrets Manager calls of a rotation: a region that does not answer is said at once.
QUICK = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1})
_ALPHABET = string.ascii_letters + string.digits


class RotationError(Exception):
    """A rotation step could not be done; the message names the region and why."""


@dataclass(frozen=True)
class Rotatable:
    """A key drkit can rotate: its source and how (``rotation``)."""

    source: KeySource
    rotation: str


def rotatable(settings: dict[str, Any]) -> dict[str, Rotatable]:
    """The keys whose settings name a rotation, by name."""
    items = {i["name"]: i for i in (settings.get("keys") or {}).get("items") or []}
    return {s.name: Rotatable(s, items[s.name]["rotation"]) for s in key_sources(settings)
            if items[s.name].get("rotation")}


def select(settings: dict[str, Any], names: list[str], everything: bool) -> list[str]:
    """The keys to rotate, in settings order; ValueError naming what is wrong."""
    known = [s.name for s in key_sources(settings)]
    able = rotatable(settings)
    if everything:
        return [n for n in known if n in able]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown key {', '.join(unknown)}; this environment's keys are "
                         f"{', '.join(known)}")
    manual = [n for n in names if n not in able]
    if manual:
        raise ValueError(f"drkit cannot rotate {', '.join(manual)} (no rotation in "
                         f"drkit.keys); it rotates {', '.join(able) or 'no key'}")
    return [n for n in known if n in names]


def version_id(run_id: str, key: str) -> str:
    """The id of the new version a run writes for ``key``: the same in every region
    and on every resume of the run (Secrets Manager's ClientRequestToken)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"drkit:{run_id}:{key}"))


def new_password(length: int = 32) -> str:
    """A random password of letters and digits (safe in a libpq passfile and a URL)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def next_postgres_value(current: str) -> str:
    """The database credentials secret with new passwords (the login role's, and
    the replication role's when it has its own)."""
    value = json.loads(current)
    value["password"] = new_password()
    if value.get("replication_password"):
        value["replication_password"] = new_password()
    return json.dumps(value)


def register_postgres_value(text: str) -> None:
    """Mark every password in a credentials secret as never to be written."""
    register_secret(text)
    try:
        value = json.loads(text)
    except ValueError:
        return
    for key in ("password", "replication_password"):
        register_secret(value.get(key))


def _sm(env: Any, region: str) -> Any:
    return env.client("secretsmanager", env.settings["regions"][region]["cloud_region"],
                      config=QUICK)


def _why(exc: Exception) -> str:
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
    return str(code or type(exc).__name__)


def stages(env: Any, secret_id: str, region: str) -> dict[str, list[str]]:
    """{version id: staging labels} of one region's copy."""
    return _sm(env, region).describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {}


def holder(versions: dict[str, list[str]], label: str) -> str | None:
    return next((v for v, labels in versions.items() if label in labels), None)


def answering(env: Any, template: str) -> dict[str, str]:
    """{region: why} for every region whose copy of ``template`` cannot be read."""
    down = {}
    for region in env.regions_primary_first():
        try:
            stages(env, template.replace("REGION", region), region)
        except Exception as exc:  # unreachable, throttled, absent: the region cannot take part
            down[region] = _why(exc)
    return down


def stage(env: Any, template: str, token: str, make_value: Callable[[str], str],
          register: Callable[[str], None], regions: list[str]) -> dict[str, Any]:
    """Write the new value as version ``token`` (AWSPENDING) in ``regions``. A value
    already written under ``token`` in any region (a resumed run) is reused, so every
    region gets the same one. Returns, per region, the version that held AWSCURRENT
    before the rotation (the old one)."""
    value, old = None, {}
    for region in regions:
        sm, secret_id = _sm(env, region), template.replace("REGION", region)
        versions = stages(env, secret_id, region)
        current = holder(versions, CURRENT)
        old[region] = (holder(versions, PREVIOUS) if current == token else current) or ""
        if value is None and token in versions:
            value = sm.get_secret_value(SecretId=secret_id, VersionId=token)["SecretString"]
    if value is None:
        first = regions[0]
        value = make_value(_sm(env, first).get_secret_value(
            SecretId=template.replace("REGION", first))["SecretString"])
    register(value)
    for region in regions:
        secret_id = template.replace("REGION", region)
        if token not in stages(env, secret_id, region):
            _sm(env, region).put_secret_value(SecretId=secret_id, SecretString=value,
                                              ClientRequestToken=token,
                                              VersionStages=[PENDING])
    return {"version": token, "old_versions": old, "regions": regions}


def promote(env: Any, template: str, token: str, regions: list[str], *,
            drop_previous: bool) -> dict[str, Any]:
    """AWSCURRENT to version ``token`` in ``regions`` (AWSPENDING removed from it);
    with ``drop_previous`` the old version keeps no label at all. Idempotent."""
    done = {}
    for region in regions:
        sm, secret_id = _sm(env, region), template.replace("REGION", region)
        versions = stages(env, secret_id, region)
        if token not in versions:
            raise RotationError(f"{region}: {secret_id} has no version {token}; stage it first")
        current = holder(versions, CURRENT)
        if current != token:
            sm.update_secret_version_stage(SecretId=secret_id, VersionStage=CURRENT,
                                           MoveToVersionId=token, RemoveFromVersionId=current)
        if PENDING in versions[token]:
            sm.update_secret_version_stage(SecretId=secret_id, VersionStage=PENDING,
                                           RemoveFromVersionId=token)
        previous = holder(stages(env, secret_id, region), PREVIOUS)
        if drop_previous and previous:
            sm.update_secret_version_stage(SecretId=secret_id, VersionStage=PREVIOUS,
                                           RemoveFromVersionId=previous)
        done[region] = {"current": token,
                        "previous": None if drop_previous else previous}
    return done


def current_versions(env: Any, template: str) -> dict[str, Any]:
    """Per region: the version holding AWSCURRENT and any holding AWSPENDING (an
    unfinished rotation), or why the region did not answer."""
    out: dict[str, Any] = {}
    for region in env.regions_primary_first():
        try:
            versions = stages(env, template.replace("REGION", region), region)
        except Exception as exc:  # reported per region
            out[region] = {"error": _why(exc)}
            continue
        out[region] = {"current": [v for v, s in versions.items() if CURRENT in s],
                       "pending": [v for v, s in versions.items() if PENDING in s]}
    return out


def read_version(env: Any, template: str, version: str, regions: list[str]) -> str:
    """The value of ``version`` from the first of ``regions`` that answers."""
    problems = []
    for region in regions:
        try:
            return _sm(env, region).get_secret_value(
                SecretId=template.replace("REGION", region), VersionId=version)["SecretString"]
        except Exception as exc:  # the next region's copy
            problems.append(f"{region} ({_why(exc)})")
    raise RotationError(f"version {version} of {template} could not be read: "
                        + ", ".join(problems))
