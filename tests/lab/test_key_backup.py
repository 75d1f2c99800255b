"""Key backups on the real lab: `invoke keys.backup --shares 5 --threshold 3` seals
the lab's real keys (Secrets Manager's database and app secrets, the ssh key,
the TLS keys) into every region's bucket; `keys.restore` with two different
triples of shares gives back exactly the keys in use; too few shares, a damaged
share, a share of another backup, a wrong passphrase and an altered archive are
each refused with exit 2 and nothing written.

Leaves behind two key backups and the passphrase secret in every region (what a
first backup makes); the altered object is put back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drkit.errors import ExitCode
from drkit.keys import store
from tests.lab.runs import PROJECT, drkit, journal, result_of

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def environment(lab_environment):
    return lab_environment


def _backup(custody: Path) -> dict:
    proc = drkit("keys.backup", "--shares", "5", "--threshold", "3", "--shares-out",
                 str(custody), "--yes", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run_id = result_of(proc)["run_id"]
    return next(e["outputs"] for e in journal(run_id)
                if e["event"] == "step_output" and e["step"] == "backup")


def _restored(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _refused(args: list[str], says: str, out: Path) -> None:
    proc = drkit("keys.restore", "--out", str(out), *args)
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert says in proc.stderr, proc.stderr[-2000:]
    assert not out.exists(), f"a refused restore wrote {out}"


def test_any_three_shares_give_back_exactly_the_keys_and_bad_ones_are_refused(
        environment, tmp_path):
    from drkit.keys.sources import read_keys

    in_use, _ = read_keys(environment, PROJECT)
    assert set(in_use) == {"db-credentials", "app-secret", "ssh", "lab-tls", "lab-ca"}
    first = _backup(tmp_path / "custody")
    shares = sorted(Path(p) for p in first["share_files"])
    assert len(shares) == 5 and all(p.stat().st_mode & 0o777 == 0o600 for p in shares)
    assert sorted(first["buckets"]) == sorted(f"lab-{r}-backups"
                                              for r in environment.regions)

    for n, triple in enumerate([shares[:3], [shares[4], shares[1], shares[3]]]):
        out = tmp_path / f"restored-{n}"
        proc = drkit("keys.restore", "--out", str(out), "--backup", first["label"],
                     "--shares", ",".join(map(str, triple)))
        assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
        assert _restored(out) == in_use
        assert "custodians' shares" in proc.stdout

    nowhere = tmp_path / "refused"
    label = ["--backup", first["label"]]
    _refused([*label, "--shares", f"{shares[0]},{shares[1]}"], "needs 3 different custodians",
             nowhere)
    words = shares[2].read_text().replace("words: ", "").split("\n")[3].split()
    damaged = tmp_path / "damaged-share.txt"
    damaged.write_text("words: " + " ".join([*words[:9], "zero" if words[9] != "zero"
                                             else "zoom", *words[10:]]) + "\n")
    _refused([*label, "--shares", f"{shares[0]},{shares[1]},{damaged}"], "not a valid share",
             nowhere)
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("not the passphrase\n")
    _refused([*label, "--passphrase-file", str(wrong)], "the passphrase is wrong", nowhere)

    second = _backup(tmp_path / "custody-2")
    other = sorted(Path(p) for p in second["share_files"])
    _refused(["--backup", second["label"], "--shares", f"{other[0]},{other[1]},{shares[2]}"],
             "is a share of another key backup", nowhere)


def test_an_altered_archive_is_refused_and_another_region_serves(environment, tmp_path):
    backup = store.find(environment, "latest", "us-east")
    s3 = environment.client("s3", environment.regions["us-east"]["cloud_region"])
    original = s3.get_object(Bucket=backup.bucket, Key=backup.archive_key)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    s3.put_object(Bucket=backup.bucket, Key=backup.archive_key, Body=bytes(flipped))
    try:
        _refused(["--region", "us-east"], "was altered", tmp_path / "refused")
        verify = drkit("keys.verify", "--yes")
        assert verify.returncode == ExitCode.STEP_FAILED, verify.stderr[-2000:]
        assert f"s3://{backup.bucket}/{backup.archive_key} was altered" in (
            verify.stderr + verify.stdout)
        ok = drkit("keys.restore", "--out", str(tmp_path / "from-eu-west"),
                   "--region", "eu-west")
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert "passphrase from Secrets Manager" in ok.stdout
    finally:
        s3.put_object(Bucket=backup.bucket, Key=backup.archive_key, Body=original)
    verify = drkit("keys.verify", "--yes", "--json")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    listing = json.loads(drkit("keys.list", "--json").stdout)
    assert all(isinstance(v, list) and v for v in listing.values()), listing
