"""The switchover's promotion waits in the replayed WAL for this run's fence and
the old primary's shutdown checkpoint after it, and for nothing else
(playbooks/roles/pg_promote/files/pg_promote_after_fence.py; the lab's planned
failover test runs it against real PostgreSQL)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = (Path(__file__).resolve().parents[2]
          / "playbooks/roles/pg_promote/files/pg_promote_after_fence.py")
spec = importlib.util.spec_from_file_location("pg_promote_after_fence", SCRIPT)
wait = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wait)

# pg_waldump (PostgreSQL 15) as it printed a fence and a shutdown on the lab.
MARKER = ('rmgr: LogicalMessage len (rec/tot):     84/    84, tx:        740, lsn: 0/09000028, '
          'prev 0/08000110, desc: MESSAGE transactional, prefix "drkit"; payload (32 bytes): '
          + " ".join(f"{b:02X}" for b in b"fence 20261204T010144Z-RB-DR-003"))
COMMIT = ("rmgr: Transaction len (rec/tot):     34/    34, tx:        740, lsn: 0/09000080, "
          "prev 0/09000028, desc: COMMIT 2026-12-04 01:01:55.911 UTC")
SWITCH = ("rmgr: XLOG        len (rec/tot):     24/    24, tx:          0, lsn: 0/090000A8, "
          "prev 0/09000080, desc: SWITCH ")
SHUTDOWN = ("rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/0A000028, "
            "prev 0/090000A8, desc: CHECKPOINT_SHUTDOWN redo 0/A000028; tli 1; prev tli 1; "
            "fpw true; xid 0:741; oid 16439; online false")
RUN = "20261204T010144Z-RB-DR-003"


def test_records_are_read_with_the_servers_spelling_of_an_lsn() -> None:
    found = wait.records("\n".join([MARKER, COMMIT, "pg_waldump: error: something"]))
    assert [lsn for lsn, _ in found] == ["0/9000028", "0/9000080"]
    assert wait.message(found[0][1]) == f"fence {RUN}"
    assert wait.message(found[1][1]) is None


def test_the_fence_is_seen_once_its_shutdown_checkpoint_follows_its_marker() -> None:
    watch = wait.Watch(RUN)
    assert not watch.feed(wait.records(f"{MARKER}\n{COMMIT}"))
    assert watch.feed(wait.records(f"{SWITCH}\n{SHUTDOWN}"))
    assert watch.seen["marker_lsn"] == "0/9000028"
    assert watch.seen["shutdown_checkpoint_lsn"] == "0/A000028"


ANOTHER_RUNS = MARKER.replace("66 65 6E 63 65 20 32", "66 65 6E 63 65 20 31")


@pytest.mark.parametrize("dump", [
    SHUTDOWN,  # a restart nobody fenced
    f"{ANOTHER_RUNS}\n{SHUTDOWN}",
])
def test_a_shutdown_without_this_runs_fence_before_it_promotes_nothing(dump: str) -> None:
    assert not wait.Watch(RUN).feed(wait.records(dump))


def test_an_undone_fence_refuses_at_once() -> None:
    undone = MARKER.replace("payload (32 bytes): 66 65", "payload (34 bytes): 75 6E 66 65")
    assert wait.message(wait.records(undone)[0][1]) == f"unfence {RUN}"
    with pytest.raises(wait.Refused, match="undone"):
        wait.Watch(RUN).feed(wait.records(f"{MARKER}\n{undone}\n{SHUTDOWN}"))


def test_the_wal_is_read_on_the_newest_timeline_that_holds_it(tmp_path: Path) -> None:
    for name in ("000000010000000000000009", "00000002000000000000000A",
                 "00000003000000000000000A", "00000003000000000000000A.partial",
                 "archive_status"):
        (tmp_path / name).touch()
    size = 16 * 1024 * 1024
    assert wait.wal_timeline(str(tmp_path), wait.lsn_int("0/A000028"), size) == 3
    assert wait.wal_timeline(str(tmp_path), wait.lsn_int("0/9FFFFFF"), size) == 1
    with pytest.raises(wait.Refused, match="no WAL file"):
        wait.wal_timeline(str(tmp_path), wait.lsn_int("0/B000000"), size)


@pytest.mark.parametrize(("code", "expected"), [(0, ["0/9000028", "0/9000080"]), (1, None)])
def test_a_range_pg_waldump_did_not_read_to_its_end_is_read_again(
        tmp_path: Path, code: int, expected: list[str] | None) -> None:
    """pg_waldump exits 0 only when it read up to --end: anything else (a file
    recycled under it, a torn read) must not move the scan past records unseen."""
    (tmp_path / "pg_wal").mkdir()
    (tmp_path / "pg_wal" / "000000010000000000000009").touch()
    waldump = tmp_path / "pg_waldump"
    waldump.write_text(f"#!/bin/sh\ncat <<'OUT'\n{MARKER}\n{COMMIT}\nOUT\nexit {code}\n")
    waldump.chmod(0o755)
    args = wait.argparse.Namespace(bin_dir=str(tmp_path), data_dir=str(tmp_path))
    found, said = wait.dump(args, wait.lsn_int("0/9000000"), wait.lsn_int("0/90000A2"), 16 << 20)
    assert (found if found is None else [lsn for lsn, _ in found]) == expected
    assert said == ("" if code == 0 else "exit 1")


def test_a_late_start_finds_the_marker_in_the_segments_replayed_already(tmp_path: Path) -> None:
    """The marker (segment 9) and the shutdown checkpoint (segment A, after the
    shutdown's switch), both replayed before the script started: the look-back
    reads 9 and A, each on the newest timeline pg_wal holds it on, and takes what
    pg_waldump printed even where it stopped early."""
    (tmp_path / "pg_wal").mkdir()
    for name in ("000000010000000000000008", "000000010000000000000009",
                 "000000020000000000000009", "00000002000000000000000A"):
        (tmp_path / "pg_wal" / name).touch()
    log = tmp_path / "calls"
    waldump = tmp_path / "pg_waldump"
    waldump.write_text(f"""#!/bin/sh
echo "$@" >> {log}
case "$*" in
  *--start=0/9000000*) printf '%s\\n' '{MARKER}' '{COMMIT}' '{SWITCH}'; exit 1 ;;
  *--start=0/A000000*) printf '%s\\n' '{SHUTDOWN}' ;;
esac
""")
    waldump.chmod(0o755)
    args = wait.argparse.Namespace(bin_dir=str(tmp_path), data_dir=str(tmp_path))
    found = wait.look_back(args, wait.lsn_int("0/A0000A0"), 16 << 20)
    watch = wait.Watch(RUN)
    assert watch.feed(found)
    assert watch.seen["marker_lsn"] == "0/9000028"
    calls = log.read_text().splitlines()
    assert [c.split()[1:] for c in calls] == [
        ["--timeline=2", "--start=0/9000000", "--end=0/A000000"],
        ["--timeline=2", "--start=0/A000000", "--end=0/A0000A0"]]


def test_a_fence_undone_then_fenced_again_is_waited_for() -> None:
    """A resumed run that fences again after its first fence was undone: the
    look-back sees both, and the newest decides."""
    undone = MARKER.replace("payload (32 bytes): 66 65", "payload (34 bytes): 75 6E 66 65")
    again = MARKER.replace("lsn: 0/09000028", "lsn: 0/09000090")
    watch = wait.Watch(RUN)
    assert not watch.feed(wait.records(f"{MARKER}\n{undone}\n{again}"))
    assert watch.feed(wait.records(SHUTDOWN))
    assert watch.seen["marker_lsn"] == "0/9000090"
