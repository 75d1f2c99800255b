"""What drkit reads from pgBackRest repositories, and the restore it plans from that."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from drkit import backups
from drkit.checks.backup import restored_copy_probe, verify_results_probe, wal_archived_probe
from drkit.errors import ConfigError
from drkit.registry import StepContext

T0 = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def _entry(start: datetime, stop: datetime, kind: str = "full", error: bool = False) -> str:
    return json.dumps({"backup-type": kind, "backup-timestamp-start": int(start.timestamp()),
                       "backup-timestamp-stop": int(stop.timestamp()),
                       "backup-lsn-start": "0/1C000028", "backup-lsn-stop": "0/1C000138",
                       "backup-info-size": 159676078, "backup-info-repo-size": 57817262,
                       "backup-error": error})


def _info(*sets: tuple[str, str]) -> str:
    body = "\n".join(f"{label}={entry}" for label, entry in sets)
    return (f"[backrest]\nbackrest-format=5\n\n[backup:current]\n{body}\n\n[db]\ndb-id=1\n\n"
            '[backrest]\nbackrest-checksum="x"\n')


FULL = ("20261203-060000F", _entry(T0, T0 + timedelta(seconds=9)))
DIFF = ("20261203-060000F_20261203-070000D",
        _entry(T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=4), "diff"))


def _state(region: str, number: int, text: str | None, reachable: bool = True):
    repo = backups.Repository(number, region, region + "-1", f"lab-{region}-backups", "lab")
    sets = backups.parse_backup_info(text) if text else []
    return backups.RepositoryState(repo, reachable, None if reachable else "timed out", sets)


def test_backup_info_gives_each_set_with_its_end_lsn_and_sizes():
    sets = backups.parse_backup_info(_info(DIFF, FULL))
    assert [s.label for s in sets] == [FULL[0], DIFF[0]]  # oldest first
    assert sets[0].stop == T0 + timedelta(seconds=9)
    assert (sets[0].lsn_stop, sets[0].size_bytes, sets[1].type) == ("0/1C000138", 159676078,
                                                                    "diff")


def test_repositories_follow_the_settings_order():
    settings = {"estate": "lab", "regions": {"eu-west": {"cloud_region": "eu-west-1"},
                                             "ap-south": {"cloud_region": "ap-south-1"}},
                "backup": {"stanza": "lab", "repositories": [{"region": "eu-west"},
                                                             {"region": "ap-south"}]}}
    repos = backups.repositories(settings)
    assert [(r.number, r.bucket, r.cloud_region) for r in repos] == [
        (1, "lab-eu-west-backups", "eu-west-1"), (2, "lab-ap-south-backups", "ap-south-1")]
    assert repos[0].backup_info_key == "pgbackrest/backup/lab/backup.info"


def test_an_environment_without_backups_is_told_how_to_add_them():
    with pytest.raises(ConfigError, match=r"drkit\.backup"):
        backups.repositories({"regions": {}})


def plan(states, region="", label="latest", target=None, now=T0 + timedelta(hours=2),
         prefer=""):
    return backups.plan_restore(states, region=region, label=label, target_time=target, now=now,
                                prefer_region=prefer)


def test_a_target_time_picks_the_newest_backup_that_ended_before_it():
    p = plan([_state("eu-west", 1, _info(FULL, DIFF))], target=T0 + timedelta(minutes=30))
    assert (p.problems, p.repo, p.label) == ([], 1, FULL[0])
    p = plan([_state("eu-west", 1, _info(FULL, DIFF))])
    assert p.label == DIFF[0]


def test_an_unreachable_repository_is_skipped_with_a_decision():
    p = plan([_state("eu-west", 1, None, reachable=False), _state("ap-south", 2, _info(FULL))])
    assert (p.repo, p.region) == (2, "ap-south")
    assert any("repo1 (eu-west) skipped" in d for d in p.decisions)


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"label": "20261101-000000F"}, "backup 20261101-000000F is not in repo1"),
    ({"target": T0 - timedelta(minutes=1)}, "before the oldest backup"),
    ({"target": T0 + timedelta(hours=3)}, "in the future"),
    ({"region": "us-east"}, "region us-east has no backup repository"),
    ({"label": FULL[0], "target": T0}, f"before backup {FULL[0]} ended"),
])
def test_a_restore_that_cannot_work_names_why(kwargs, problem):
    p = plan([_state("eu-west", 1, _info(FULL))], **kwargs)
    assert p.repo is None
    assert problem in " ".join(p.problems)


AP_FULL = ("20261203-060005F", _entry(T0 + timedelta(seconds=5), T0 + timedelta(seconds=15)))


def test_another_repository_with_a_backup_covering_the_target_is_the_fallback():
    states = [_state("eu-west", 1, _info(FULL, DIFF)), _state("ap-south", 2, _info(AP_FULL))]
    p = plan(states, target=T0 + timedelta(minutes=30))
    assert (p.repo, p.label) == (1, FULL[0])
    assert p.fallbacks == [{"repo": 2, "region": "ap-south", "label": AP_FULL[0]}]
    assert any("falls back to backup 20261203-060005F in repo2 (ap-south)" in d
               for d in p.decisions)


def test_a_restore_into_a_region_reads_its_own_repository_first_the_others_stand_in():
    states = [_state("eu-west", 1, _info(FULL, DIFF)), _state("ap-south", 2, _info(AP_FULL))]
    p = plan(states, prefer="ap-south")
    assert (p.repo, p.region, p.label) == (2, "ap-south", AP_FULL[0])
    assert p.fallbacks == [{"repo": 1, "region": "eu-west", "label": DIFF[0]}]
    # A region without a repository of its own keeps the settings' order.
    assert plan(states, prefer="us-east").repo == 1


def test_no_fallback_when_the_region_is_asked_for_or_no_other_backup_covers_the_target():
    states = [_state("eu-west", 1, _info(FULL, DIFF)), _state("ap-south", 2, _info(AP_FULL))]
    assert plan(states, region="eu-west").fallbacks == []
    # ap-south's only backup ended after this target: it cannot stand in.
    assert plan(states, target=T0 + timedelta(seconds=12)).fallbacks == []
    assert plan(states, label=FULL[0]).fallbacks == []  # labels are per repository


def test_a_fallback_repository_is_never_one_that_cannot_be_read():
    states = [_state("eu-west", 1, _info(FULL)), _state("ap-south", 2, None, reachable=False)]
    p = plan(states)
    assert (p.repo, p.fallbacks) == (1, [])


def test_no_backup_yet_says_to_take_one():
    p = plan([_state("eu-west", 1, None), _state("ap-south", 2, _info())])
    assert "take one with `invoke backup`" in p.problems[0]


COPY = {"amcheck_ok": True, "amcheck_tail": [], "data_checksums": "on", "lsn": "0/3000060",
        "last_commit": "2026-12-03 06:59:58.5+00",
        "tables": {"app": {"public.drkit_canary": {"rows": 42, "hash": "7"}}}}


def test_the_restored_point_is_measured_against_the_target_time():
    out = restored_copy_probe(None, copy=COPY, reference_time="2026-12-03T08:00:00Z",
                              target_time="2026-12-03T07:00:00+00:00")
    assert out["ok"] and out["tables"] == {"app/public.drkit_canary": 42}
    assert out["rpo"]["seconds"] == pytest.approx(1.5)
    assert out["rpo"]["detail"]["reference"] == "target time"


def test_with_no_transaction_replayed_after_the_backup_its_end_is_the_restored_point():
    # Nothing archived since the backup: the copy holds every commit before its end.
    out = restored_copy_probe(None, copy={**COPY, "last_commit": ""},
                              reference_time="2026-12-03T08:00:00Z",
                              backup_end="2026-12-03T07:59:00+00:00")
    assert out["rpo"]["seconds"] == pytest.approx(60.0)
    assert "the restored backup's end" in out["rpo"]["detail"]["evidence"]
    # A commit replayed after the backup's end is the later point.
    out = restored_copy_probe(None, copy=COPY, reference_time="2026-12-03T08:00:00Z",
                              backup_end="2026-12-03T06:00:00+00:00")
    assert out["rpo"]["seconds"] == pytest.approx(3601.5)
    assert out["rpo"]["detail"]["evidence"] == "the last transaction the restored copy replayed"


def test_a_copy_that_fails_amcheck_or_lacks_checksums_is_not_ok():
    out = restored_copy_probe(None, copy={**COPY, "amcheck_ok": "False", "data_checksums": "off",
                                          "amcheck_tail": ["btree index t_pkey: corrupt"]},
                              reference_time="2026-12-03T08:00:00Z")
    assert not out["ok"]
    assert "btree index t_pkey: corrupt" in out["problems"][0]
    assert "data checksums are 'off'" in out["problems"][1]


def test_verify_results_name_the_damaged_object():
    out = verify_results_probe(None, results=[
        {"repo": 1, "repo_name": "eu-west", "ok": True, "problems": []},
        {"repo": 2, "repo_name": "ap-south", "ok": False,
         "problems": ["backup/lab/20261203-060000F/pg_data/base/5/16384.lz4: invalid checksum"]}])
    assert not out["ok"]
    assert out["damaged"] == ["ap-south"]
    assert "repo2 (ap-south) is damaged: backup/lab/20261203-060000F" in out["summary"]


def _archive_now(report: dict) -> dict:
    return {"stats": {}, "facts": {"localhost": {"archive": report}}}


def test_a_primary_that_cannot_be_reached_is_a_warning_not_a_failure():
    ctx = StepContext(env=None, project=None, run_dir=None)
    out = wal_archived_probe(ctx, _archive_now(
        {"archived": False, "archived_by": "",
         "why": "no database node answered as primary (asked a, b, c)"}))
    assert out["ok"] and not out["archived"]
    assert ctx.decisions == [
        "WARNING: the newest WAL could not be archived: no database node answered as "
        "primary (asked a, b, c); the restore goes on from what was archived before "
        "(the run's RPO says how far behind that is)"]


def test_an_archived_segment_names_the_node_that_archived_it():
    ctx = StepContext(env=None, project=None, run_dir=None)
    out = wal_archived_probe(ctx, _archive_now({"archived": "True", "archived_by": "db-1"}))
    assert (out["ok"], out["archived"], out["archived_by"]) == (True, True, "db-1")
    assert "db-1" in ctx.decisions[0]


def test_a_restore_that_fell_back_says_so_in_the_journal():
    ctx = StepContext(env=None, project=None, run_dir=None)
    line = ("backup A in repo1 (eu-west) is damaged ([026]: checksum): restoring backup B "
            "from repo2 (ap-south) instead")
    out = restored_copy_probe(ctx, copy={**COPY, "fallbacks": [line]},
                              reference_time="2026-12-03T08:00:00Z")
    assert out["ok"]
    assert ctx.decisions == [f"restore fell back: {line}"]


class _FakeS3:
    """list_objects_v2 over a dict {key: last_modified}, with Delimiter support."""

    def __init__(self, objects: dict[str, int]) -> None:
        self.objects = objects

    def get_paginator(self, name: str):
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str, Delimiter: str = ""):
        keys = [k for k in self.objects if k.startswith(Prefix)]
        if not Delimiter:
            yield {"Contents": [{"Key": k, "LastModified": self.objects[k]} for k in keys]}
            return
        dirs = sorted({Prefix + k[len(Prefix):].split("/", 1)[0] + "/" for k in keys
                       if "/" in k[len(Prefix):]})
        yield {"CommonPrefixes": [{"Prefix": d} for d in dirs],
               "Contents": [{"Key": k, "LastModified": self.objects[k]} for k in keys
                            if "/" not in k[len(Prefix):]]}


def test_a_restore_with_no_node_left_follows_the_timeline_archived_last_not_the_highest():
    from drkit.backups import Repository, last_archived_timeline

    repo = Repository(number=1, region="eu-west", cloud_region="eu-west-1",
                      bucket="lab-eu-west-backups", stanza="main")
    base = "pgbackrest/archive/main/15-1/"
    s3 = _FakeS3({
        base + "0000000A.history": 5,
        base + "0000000B.history": 6,
        # Timeline 11: a copy promoted and archived briefly, then abandoned.
        base + "0000000B00000000/0000000B0000000000000050-ab12.lz4": 6,
        # Timeline 10: the live history, written until the end.
        base + "0000000A00000000/0000000A000000000000004F-cd34.lz4": 4,
        base + "0000000A00000001/0000000A0000000100000002-ef56.lz4": 9,
    })
    assert last_archived_timeline(s3, repo) == 10
    assert last_archived_timeline(_FakeS3({}), repo) is None
