"""Key backup, verification and restore, as the actions, probes and tasks use them."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.keys import archive, shares, sources, store
from drkit.redact import register_secret


def take_backup(env: Any, project_root: Path, *, share_count: int = 0, threshold: int = 0,
                shares_out: Path | None = None, progress=lambda text: None) -> dict[str, Any]:
    """Read every key, seal them, write the archive and manifest to every region's
    bucket and, with ``share_count``, the custodians' share files to ``shares_out``.
    Returns what the journal may hold (no secret)."""
    values, read_from = sources.read_keys(env, project_root)
    progress(f"read {len(values)} keys")
    phrase, holders = store.passphrase(env, create=True)
    now = datetime.now(UTC)
    label = store.label_for(now)
    sealed = archive.seal(values, passphrase=phrase,
                          about={"label": label, "created": now.isoformat()})
    share_files: list[shares.ShareFile] = []
    if share_count:
        share_files = shares.split(sealed.recovery_secret, count=share_count,
                                   threshold=threshold, label=label)
    manifest = {
        "label": label, "created": now.isoformat(),
        "archive": {"key": store.archive_key(label), "sha256": sealed.sha256,
                    "size_bytes": len(sealed.data)},
        "keys": [s.as_dict() for s in sources.key_sources(env.settings)],
        "kdf": {k: v for k, v in sealed.header["kdf"].items() if k != "salt"},
        "cipher": sealed.header["cipher"],
        "shares": ({"count": share_count, "threshold": threshold,
                    "identifier": share_files[0].identifier} if share_files else None),
    }
    progress(f"writing {label} to every region's bucket")
    written, failed = store.upload(env, sealed.data, manifest)
    if not written:
        raise store.StoreError(f"{label} could not be written to any region: "
                               + "; ".join(f"{r} ({why})" for r, why in failed.items()))
    # Only for a backup that exists: shares of nothing would mislead custodians.
    written_files = write_shares(share_files, shares_out) if share_files else []
    return {"label": label, "sha256": sealed.sha256, "size_bytes": len(sealed.data),
            "keys": manifest["keys"], "read_from": read_from, "buckets": written,
            "failed": failed, "passphrase_regions": holders, "shares": manifest["shares"],
            "share_files": [str(p) for p in written_files]}


def write_shares(files: list[shares.ShareFile], out: Path | None) -> list[Path]:
    """Each share in its own 0600 file in ``out`` (made 0700); refuses to overwrite."""
    if out is None:
        raise shares.SharesError("share files need a directory (--shares-out)")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = [out / f"{f.label}-share-{f.index}-of-{f.count}.txt" for f in files]
    for path, share in zip(paths, files, strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(share.text())
    return paths


def open_backup(env: Any, backup: store.KeyBackup, *, passphrase: str | None = None,
                share_texts: list[tuple[str, str]] | None = None) -> dict[str, bytes]:
    """The keys of ``backup``, in memory: fetched (SHA-256 checked), opened with the
    custodians' shares, the passphrase given, or the one in Secrets Manager."""
    data = store.fetch(env, backup)
    if share_texts is not None:
        meta = backup.manifest.get("shares")
        if not meta:
            raise shares.SharesError(f"{backup.label} was taken without shares; open it "
                                     "with the passphrase")
        secret = shares.combine(share_texts, identifier=meta["identifier"],
                                threshold=meta["threshold"], label=backup.label)
        return archive.open_archive(data, recovery_secret=secret)
    if passphrase is None:
        passphrase, _ = store.passphrase(env, create=False)
    return archive.open_archive(data, passphrase=passphrase)


def verify(env: Any, project_root: Path, label: str = "latest") -> dict[str, Any]:
    """Every region's copy of the backup opened in memory and checked against its
    manifest, and compared with the keys in use now (a key rotated since the
    backup makes it stale). Nothing is written."""
    problems, regions, stale = [], [], set()
    current: dict[str, bytes] = {}
    try:
        current, _ = sources.read_keys(env, project_root)
    except sources.KeySourceError as exc:
        problems.append(f"the keys in use could not be read to compare: {exc}")
    phrase = None
    try:
        phrase, _ = store.passphrase(env, create=False)
    except store.StoreError as exc:
        problems.append(str(exc))
    chosen = None
    for region in env.settings.get("regions") or {}:
        try:
            backup = store.find(env, label, region)
            chosen = chosen or backup.label
            if phrase is not None:
                keys = open_backup(env, backup, passphrase=phrase)
                stale |= {n for n, v in keys.items() if n in current and current[n] != v}
                missing = sorted(set(current) - set(keys))
                if missing:
                    problems.append(f"{region}: {backup.label} lacks {', '.join(missing)}")
            regions.append({"region": region, "label": backup.label, "ok": True})
        except (store.StoreError, archive.ArchiveError, shares.SharesError) as exc:
            problems.append(f"{region}: {exc}")
            regions.append({"region": region, "label": None, "ok": False})
    if stale:
        problems.append(f"{chosen} is stale: {', '.join(sorted(stale))} changed since it was "
                        "taken; take a new one with `invoke keys.backup`")
    return {"ok": not problems, "label": chosen, "regions": regions, "stale": sorted(stale),
            "problems": problems,
            "summary": "; ".join(problems) or f"{chosen}: intact in {len(regions)} regions"}


def restore_secrets(env: Any, region: str, label: str = "latest", *,
                    share_texts: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Every secret key of the backup ``label`` written into ``region``'s Secrets
    Manager (RB-DR-007: a rebuilt region's secrets must be the ones its restored
    database knows, not the new values Terraform generated). A secret already
    holding the backup's value is left alone; a missing one is created. Opened with
    the custodians' shares, else the passphrase from any region's Secrets Manager.
    Returns names and versions only, never a value."""
    backup = store.find(env, label)
    keys = open_backup(env, backup, share_texts=share_texts)
    sm = store.secrets_client(env, region)
    written, unchanged, created = [], [], []
    for source in sources.key_sources(env.settings):
        if not source.secret:
            continue
        if source.name not in keys:
            raise store.StoreError(f"{backup.label} holds no {source.name}; take a key "
                                   "backup that does (`invoke keys.backup`)")
        secret_id = source.secret.replace("REGION", region)
        value = keys[source.name].decode()
        register_secret(value)
        try:
            current = sm.get_secret_value(SecretId=secret_id)["SecretString"]
        except Exception as exc:
            if store.error_code(exc) != "ResourceNotFoundException":
                raise store.StoreError(f"{secret_id} in {region}: "
                                       f"{store.error_code(exc)}") from None
            sm.create_secret(Name=secret_id, SecretString=value,
                             Description=f"drkit: restored from key backup {backup.label}")
            created.append(secret_id)
            continue
        if current == value:
            unchanged.append(secret_id)
        else:
            sm.put_secret_value(SecretId=secret_id, SecretString=value)
            written.append(secret_id)
    return {"label": backup.label, "read_from": backup.region,
            "opened_with": "shares" if share_texts is not None else "passphrase",
            "written": written, "created": created, "unchanged": unchanged}
