"""Actions of the key runbooks: RB-KY-001 key backup, RB-DR-005 key rotation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.errors import StepFailed
from drkit.keys import archive, operations, rotation, shares, sources, ssh, store
from drkit.keys import shares as shares_mod
from drkit.registry import StepContext, action


@action("keys.backup")
def keys_backup(ctx: StepContext, shares_count: int = 0, threshold: int = 0,
                shares_out: str = "") -> dict[str, Any]:
    """Every key the environment lists, encrypted into every region's bucket; with
    ``shares_count``, the recovery secret split among custodians (files in
    ``shares_out``). Fails naming any region it could not write, after the others."""
    try:
        out = operations.take_backup(
            ctx.env, ctx.project.root, share_count=int(shares_count),
            threshold=int(threshold), shares_out=Path(shares_out) if shares_out else None,
            progress=ctx.progress)
    except (sources.KeySourceError, store.StoreError, shares.SharesError,
            archive.ArchiveError) as exc:
        raise StepFailed(str(exc)) from None
    if out["failed"]:
        raise StepFailed(f"{out['label']} could not be written to "
                         + "; ".join(f"{r} ({why})" for r, why in out["failed"].items())
                         + f"; it was written to {', '.join(out['buckets'])}")
    shares_note = (f", {out['shares']['count']} shares (any {out['shares']['threshold']}) in "
                   f"{shares_out}" if out["shares"] else "")
    return {**out, "summary": f"{out['label']}: {len(out['keys'])} keys in "
                              f"{len(out['buckets'])} buckets{shares_note}"}


def _secret_keys(ctx: StepContext, keys: list[str]) -> dict[str, rotation.Rotatable]:
    able = rotation.rotatable(ctx.env.settings)
    return {k: able[k] for k in keys if k in able and able[k].source.secret}


@action("keys.stage")
def keys_stage(ctx: StepContext, keys: list[str], run_id: str,
               regions: list[str]) -> dict[str, Any]:
    """A new value of each secret key, written to every region in ``regions`` as the
    version labelled AWSPENDING (the rotation protocol's first step). Nothing uses
    it yet; a resumed run reuses the value it wrote. (Outputs are lists, not maps
    by key name: a name like db-credentials looks secret to the journal's masking.)"""
    rotated = []
    for name, key in _secret_keys(ctx, keys).items():
        token = rotation.version_id(run_id, name)
        try:
            out = rotation.stage(ctx.env, key.source.secret or "", token,
                                 rotation.next_postgres_value,
                                 rotation.register_postgres_value, regions)
        except Exception as exc:  # a region stopped answering: nothing was revoked yet
            raise StepFailed(f"{name}: the new value could not be staged: "
                             f"{type(exc).__name__}: {exc}") from None
        rotated.append({"key": name, "rotation": key.rotation, "version": token,
                        "old_versions": out["old_versions"]})
    postgres = next((r for r in rotated if r["rotation"] == "postgres"), None)
    return {"rotated": rotated, "regions": regions,
            "postgres_version": postgres["version"] if postgres else "",
            "postgres_old": postgres["old_versions"] if postgres else {},
            "summary": f"new versions of {', '.join(r['key'] for r in rotated) or 'no secret'}"
                       f" pending in {', '.join(regions)}"}


@action("keys.promote")
def keys_promote(ctx: StepContext, rotated: list[dict[str, Any]], regions: list[str],
                 emergency: bool = False, declared: str = "") -> dict[str, Any]:
    """AWSCURRENT moves to the new version of each secret key (``rotated``, the stage
    step's) in every region in ``regions``; in an emergency the old version loses
    every label. The exposure window (``declared`` -> now) is recorded."""
    able = rotation.rotatable(ctx.env.settings)
    done = []
    for item in rotated:
        try:
            rotation.promote(ctx.env, able[item["key"]].source.secret or "", item["version"],
                             regions, drop_previous=bool(emergency))
        except Exception as exc:  # said per key; a resume promotes what is left
            raise StepFailed(f"{item['key']}: AWSCURRENT could not be moved: "
                             f"{type(exc).__name__}: {exc}") from None
        done.append(item["key"])
    out: dict[str, Any] = {"promoted": done, "regions": regions}
    if declared and done:
        began = datetime.fromisoformat(declared.replace("Z", "+00:00"))
        out["exposure_s"] = round((datetime.now(UTC) - began).total_seconds(), 3)
        what = "revoked" if emergency else "rotated"
        ctx.decide(f"{what} {', '.join(done)}: exposure window {out['exposure_s']:.1f} s "
                   f"(declared {declared} -> {what} {datetime.now(UTC):%H:%M:%SZ})")
    out["summary"] = (f"AWSCURRENT is the new version of {', '.join(done) or 'no secret'} in "
                      f"{', '.join(regions)}"
                      + ("; the old version keeps no label" if emergency and done else ""))
    return out


def _ssh_key_path(ctx: StepContext, name: str) -> Path:
    key = rotation.rotatable(ctx.env.settings)[name]
    return sources.expand(key.source.file or "", ctx.project.root)


@action("keys.ssh_prepare")
def keys_ssh_prepare(ctx: StepContext, key: str, run_id: str) -> dict[str, Any]:
    """A new SSH key pair beside the one Ansible uses (made once per run); both
    public keys, for the playbooks that add and remove them."""
    out = ssh.prepare(_ssh_key_path(ctx, key), comment=f"drkit {run_id}")
    return {**out, "summary": f"new {key} key pair ready; the old one still works"}


@action("keys.ssh_switch")
def keys_ssh_switch(ctx: StepContext, key: str) -> dict[str, Any]:
    """Ansible and every ssh of drkit's use the new key from now on (the key file
    replaced; the old pair kept aside until every host has refused it)."""
    try:
        out = ssh.switch(_ssh_key_path(ctx, key))
    except ssh.SshKeyError as exc:
        raise StepFailed(str(exc)) from None
    return {**out, "summary": f"{key}: Ansible now logs in with the new key"}


@action("keys.ssh_forget")
def keys_ssh_forget(ctx: StepContext, key: str) -> dict[str, Any]:
    """The revoked private key deleted (every host refused it)."""
    found = ssh.forget(_ssh_key_path(ctx, key))
    return {"deleted": found, "summary": "the revoked private key is deleted" if found
            else "no revoked private key left"}


@action("keys.restore_secrets")
def keys_restore_secrets(ctx: StepContext, region: str, label: str = "latest",
                         shares: list[str] | None = None) -> dict[str, Any]:
    """The key backup's secrets written into ``region``'s Secrets Manager (RB-DR-007),
    opened with the custodians' share files ``shares`` or the passphrase. Idempotent:
    a secret already holding the backup's value is left alone."""
    try:
        share_texts = [shares_mod.read(Path(p)) for p in shares] if shares else None
        out = operations.restore_secrets(ctx.env, region, label or "latest",
                                         share_texts=share_texts)
    except (store.StoreError, archive.ArchiveError, shares_mod.SharesError) as exc:
        raise StepFailed(f"the secrets could not be restored into {region}: {exc}") from None
    changed = out["written"] + out["created"]
    return {**out, "summary": (f"{out['label']} (opened with the {out['opened_with']}): "
                               f"{len(changed)} secrets written into {region}"
                               + (f", {len(out['unchanged'])} already held its value"
                                  if out["unchanged"] else ""))}

