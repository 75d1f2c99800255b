"""The estate's keys: `invoke keys.backup`, `keys.verify`, `keys.list`, `keys.restore`.

`backup` and `verify` run their runbooks (journaled, locked, reported);
`restore` opens a backup with the passphrase or the custodians' shares and
writes the keys into a new directory, after every check has passed.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from invoke import Collection, task

from drkit.cli.common import maps_errors, parse_positive, run_options, run_or_resume
from drkit.cli.runs import RUN_HELP
from drkit.durations import format_duration
from drkit.errors import ConfigError

BACKUP_RUNBOOK = "RB-KY-001"
VERIFY_RUNBOOK = "RB-KY-002"
LABEL = re.compile(r"^keys-\d{8}T\d{6}Z$")
LABEL_HINT = "labels look like keys-20261203T101500Z (`invoke keys.list`)"


def _check_label(label: str) -> None:
    if label and label != "latest" and not LABEL.match(label):
        raise ConfigError(f"--backup {label!r} is not a key backup label", hint=LABEL_HINT)


@task(help={"shares": "split the recovery secret into this many custodian shares (2-16)",
            "threshold": "shares needed to recover (default 3; with --shares)",
            "shares-out": "new or empty directory for the share files (with --shares)",
            **RUN_HELP})
@maps_errors
def backup(c, shares="", threshold="", shares_out="", incident_start="", dry_run=False,
           yes=False, resume="", env="", json_=False, break_lock=False, from_="", only=""):
    """RB-KY-001: every key, encrypted (AES-256-GCM, Argon2id), into every region's
    bucket; with --shares N --threshold K, N custodian shares, any K recover."""
    shares = parse_positive(shares, "--shares", kind=int, example="5") if shares else 0
    threshold = (parse_positive(threshold, "--threshold", kind=int, example="3")
                 if threshold else 0)
    if shares or threshold:
        threshold = threshold or 3
        if not 2 <= threshold <= shares <= 16:
            raise ConfigError(f"--shares {shares} --threshold {threshold}: need 2 <= "
                              "threshold <= shares <= 16", hint="e.g. --shares 5 --threshold 3")
        if not shares_out:
            raise ConfigError("--shares needs --shares-out DIR, where each custodian's "
                              "share file is written", hint="e.g. --shares-out /secure/custody")
        out = Path(shares_out).resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"--shares-out {shares_out}: exists and is not an empty "
                              "directory", hint="give a new directory for this backup's shares")
        shares_out = str(out)
    elif shares_out:
        raise ConfigError("--shares-out without --shares", hint="add --shares 5 --threshold 3")
    run_or_resume(BACKUP_RUNBOOK, {"shares": shares, "threshold": threshold or 3,
                                   "shares_out": shares_out},
                  task_name="keys.backup", resume=resume,
                  given={"--shares": shares, "--threshold": threshold,
                         "--shares-out": shares_out},
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                 incident_start))


@task(help={"backup": "key backup label, or latest (default)", **RUN_HELP})
@maps_errors
def verify(c, backup="", incident_start="", dry_run=False, yes=False, resume="", env="",
           json_=False, break_lock=False, from_="", only=""):
    """RB-KY-002: every region's copy of the key backup opens, matches its manifest and
    the keys in use now; exit 4 names what is wrong. Writes no plaintext."""
    _check_label(backup)
    run_or_resume(VERIFY_RUNBOOK, {"backup": backup or "latest"}, task_name="keys.verify",
                  resume=resume, given={"--backup": backup},
                  **run_options(env, dry_run, yes, json_, break_lock, from_, only,
                                 incident_start))


@task(name="list", help={"env": RUN_HELP["env"], "json": "print JSON"})
@maps_errors
def list_(c, env="", json_=False):
    """Every key backup in every region's bucket: label, age, keys, shares."""
    from drkit.env import load_environment
    from drkit.keys import store
    from drkit.project import find_project

    environment = load_environment(find_project(), env or None)
    now = datetime.now(UTC)
    listing = {}
    for region in environment.regions:
        try:
            listing[region] = [{"label": b.label, "created": b.created.isoformat(),
                                "age_s": round((now - b.created).total_seconds()),
                                "keys": [k["name"] for k in b.manifest["keys"]],
                                "shares": b.manifest.get("shares"),
                                "sha256": b.manifest["archive"]["sha256"]}
                               for b in store.list_backups(environment, region)]
        except Exception as exc:  # an unreachable region is shown, not fatal
            listing[region] = f"{type(exc).__name__}: {exc}"
    if json_:
        print(json.dumps(listing, indent=2))
        return
    for region, backups in listing.items():
        if isinstance(backups, str):
            print(f"{region}: {backups}")
            continue
        print(f"{region}: {len(backups)} key backup(s)")
        for b in backups:
            shares = b["shares"]
            print(f"  {b['label']}  age {format_duration(b['age_s']):>10}  "
                  f"{', '.join(b['keys'])}"
                  + (f"  shares {shares['threshold']} of {shares['count']}" if shares else ""))


@task(help={"out": "new or empty directory to write the keys into (one 0600 file per key)",
            "backup": "key backup label, or latest (default)",
            "region": "whose bucket to read (default: the first that holds the backup)",
            "shares": "custodians' share files, comma-separated (instead of the passphrase)",
            "passphrase-file": "a file holding the passphrase (default: Secrets Manager's)",
            "env": RUN_HELP["env"]})
@maps_errors
def restore(c, out="", backup="", region="", shares="", passphrase_file="", env=""):
    """Open a key backup (passphrase from Secrets Manager, a passphrase file, or any
    threshold of the custodians' shares) and write its keys into a new directory.
    Every check passes before anything is written; a refusal writes nothing."""
    from drkit.env import load_environment
    from drkit.keys import archive, operations, store
    from drkit.keys import shares as shares_mod
    from drkit.project import find_project
    from drkit.redact import register_secret

    _check_label(backup)
    if not out:
        raise ConfigError("keys.restore needs --out DIR", hint="a new directory on an "
                          "encrypted disk; the keys are written there in the clear")
    target = Path(out).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not an empty directory",
                          hint="give a new directory")
    if shares and passphrase_file:
        raise ConfigError("--shares and --passphrase-file together", hint="give one of them")
    environment = load_environment(find_project(), env or None)
    if region:
        environment.region(region)
    phrase = None
    if passphrase_file:
        try:
            phrase = Path(passphrase_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--passphrase-file {passphrase_file}: {exc.strerror}") from None
        register_secret(phrase)
    share_texts = None
    try:
        if shares:
            share_texts = [shares_mod.read(Path(p.strip())) for p in shares.split(",") if p]
        found = store.find(environment, backup or "latest", region)
        keys = operations.open_backup(environment, found, passphrase=phrase,
                                      share_texts=share_texts)
    except (store.StoreError, archive.ArchiveError, shares_mod.SharesError) as exc:
        raise ConfigError(f"keys.restore refused: {exc}",
                          hint="nothing was written") from None
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, value in keys.items():
        fd = os.open(target / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
    how = "the custodians' shares" if share_texts else (
        "the passphrase file" if phrase else "the passphrase from Secrets Manager")
    print(f"restored {len(keys)} keys of {found.label} (from {found.region}, opened with "
          f"{how}) into {target}: {', '.join(sorted(keys))}")


ns = Collection("keys")
ns.add_task(backup)
ns.add_task(verify)
ns.add_task(list_)
ns.add_task(restore)
