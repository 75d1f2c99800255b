"""The canary counts a write as lost exactly when an acknowledged row is missing,
and measures how long clients could not write."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drkit.lab import canary

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def ack(seq: int, t: float) -> dict:
    return {"seq": seq, "t": t, "ack": t + 0.01, "address": "10.10.1.5"}


def fail(seq: int, t: float) -> dict:
    return {"seq": seq, "t": t, "t_end": t + 0.5, "address": None, "error": "OperationalError"}


def test_lost_is_exactly_the_acknowledged_rows_missing() -> None:
    acks = [ack(s, 100 + s) for s in (1, 2, 3, 5, 6)]
    result = canary.analyse(acks, [fail(4, 104)], present=[1, 2, 4, 6],
                            started_at=100, finished_at=107)
    assert result["lost"] == 2
    assert result["lost_seqs"] == [3, 5]
    assert result["acknowledged"] == 5
    # seq 4 failed for the client but committed: not lost, reported separately
    assert result["unacknowledged_present"] == 1


def test_unavailability_is_the_longest_ack_gap_and_failing_the_failed_window() -> None:
    acks = [ack(1, 100.0), ack(2, 100.1), ack(5, 103.0), ack(6, 103.1)]
    failures = [fail(3, 100.2), fail(4, 101.5)]
    result = canary.analyse(acks, failures, present=[1, 2, 5, 6],
                            started_at=100.0, finished_at=103.2)
    assert result["lost"] == 0
    assert result["write_unavailable_s"] == pytest.approx(103.01 - 100.11)
    assert result["write_unavailable_from"] == canary._iso(100.11)
    assert result["write_unavailable_to"] == canary._iso(103.01)
    assert result["failing_s"] == pytest.approx(103.01 - 100.2)
    assert result["failed_write_s"] == result["failing_s"]
    assert len(result["failure_windows"]) == 1


def test_writes_that_block_are_unavailable_without_failing() -> None:
    # Issue 18: seq 3's COMMIT blocked 9.3 s and then succeeded; nothing failed.
    blocked = {"seq": 3, "t": 100.2, "ack": 109.5, "address": "10.20.1.5"}
    acks = [ack(1, 100.0), ack(2, 100.1), blocked, ack(4, 109.6)]
    result = canary.analyse(acks, [], present=[1, 2, 3, 4],
                            started_at=100.0, finished_at=110.0)
    assert result["failing_s"] == 0
    assert result["write_unavailable_s"] == pytest.approx(109.5 - 100.11)


def test_a_canary_started_into_an_outage_is_unavailable_from_its_start() -> None:
    result = canary.analyse([ack(3, 18.0)], [fail(1, 10.0), fail(2, 14.0)], present=[3],
                            started_at=10.0, finished_at=19.0)
    assert result["write_unavailable_s"] == pytest.approx(18.01 - 10.0)
    assert result["failing_s"] == pytest.approx(18.01 - 10.0)


def test_a_run_ending_in_failure_leaves_an_open_window() -> None:
    result = canary.analyse([ack(1, 10.0)], [fail(2, 11.0), fail(3, 12.0)], present=[1],
                            started_at=10.0, finished_at=15.0)
    assert result["failure_windows"][-1]["open"] is True
    assert result["failing_s"] == pytest.approx(4.0)
    assert result["write_unavailable_s"] == pytest.approx(15.0 - 10.01)


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "acks.jsonl"
    path.write_text(json.dumps(ack(1, 1.0)) + "\n" + '{"seq": 2, "t"')
    assert [r["seq"] for r in canary.read_jsonl(path)] == [1]


# -- against a real (temporary) PostgreSQL ------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class TempPostgres:
    """A throwaway cluster on 127.0.0.1 (trust auth), owned by this test."""

    def __init__(self, root: Path) -> None:
        self.root, self.data, self.port = root, root / "data", _free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
                       check=True, capture_output=True, cwd="/")

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                                     "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, cwd="/")
        self.start()

    def start(self) -> None:
        self.pg_ctl("-l", str(self.root / "log"), "-w", "-o",
                    f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")


@pytest.fixture
def postgres() -> Iterator[TempPostgres]:
    """A temporary cluster, stopped and removed afterwards even on failure. Not under
    pytest's tmp_path: the postgres user cannot enter root's 0700 directories."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 binaries not installed")
    root = Path(tempfile.mkdtemp(prefix="drkit-test-pg-"))
    root.chmod(0o755)
    pg = TempPostgres(root)
    try:
        pg.init()
        yield pg
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "-m",
                                     "immediate", "-w", "stop"]), capture_output=True, cwd="/")
        shutil.rmtree(root, ignore_errors=True)


def _config(pg: TempPostgres, out: Path, **kw: object) -> canary.CanaryConfig:
    return canary.CanaryConfig(name="127.0.0.1", out=out, port=pg.port, dbname="postgres",
                               user="postgres", connect_timeout=1, **kw)  # type: ignore[arg-type]


def test_rows_deleted_after_the_ack_are_reported_lost(postgres: TempPostgres,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    meta = canary.Canary(_config(postgres, out, rate=200, duration_s=0.5)).run()
    assert meta["acks"] > 10 and meta["failures"] == 0
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM drkit_canary WHERE seq IN (3, 7)")
    result = canary.report(out, postgres.dsn)
    assert result["lost"] == 2 and result["lost_seqs"] == [3, 7]
    assert json.loads((out / "report.json").read_text())["lost"] == 2


def test_a_restart_shows_as_write_unavailability_without_loss(postgres: TempPostgres,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = canary.Canary(_config(postgres, out, rate=100, duration_s=None))
    thread = threading.Thread(target=run.run)
    thread.start()
    try:
        time.sleep(0.4)
        postgres.stop()
        time.sleep(0.6)
        postgres.start()
        deadline = time.monotonic() + 10
        acks_before = run.acks
        while run.acks <= acks_before + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        run.stop()
        thread.join(timeout=10)
    result = canary.report(out, postgres.dsn)
    assert result["lost"] == 0
    assert result["failed_attempts"] > 0
    assert result["failing_s"] >= 0.5
    assert result["write_unavailable_s"] >= result["failure_windows"][0]["seconds"]


def test_a_second_run_in_the_same_directory_reports_only_its_own_writes(
        postgres: TempPostgres, tmp_path: Path) -> None:
    out = tmp_path / "run"
    canary.Canary(_config(postgres, out, rate=200, duration_s=0.3)).run()
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM drkit_canary")  # the first run's rows are gone
    second = canary.Canary(_config(postgres, out, rate=200, duration_s=0.3)).run()
    result = canary.report(out, postgres.dsn)
    assert result["acknowledged"] == second["acks"] and result["lost"] == 0
