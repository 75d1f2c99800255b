"""Crash-safe writes: a reader sees the whole new content or the old one."""

from __future__ import annotations

import json
import os

import pytest

from drkit import fsutil


def test_atomic_write_text_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "state.txt"
    target.write_text("old\n")

    fsutil.atomic_write_text(target, "new\n")

    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_atomic_write_keeps_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "state.txt"
    target.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fsutil.atomic_write_text(target, "new\n")

    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_atomic_write_json_round_trips(tmp_path):
    target = tmp_path / "report.json"
    fsutil.atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}


def test_append_line_durably_by_path_and_by_handle(tmp_path):
    target = tmp_path / "log.jsonl"
    fsutil.append_line_durably(target, "one")
    with open(target, "a", encoding="utf-8") as fh:
        fsutil.append_line_durably(fh, "two")
        # Visible to another reader before the handle is closed: it was flushed.
        assert target.read_text() == "one\ntwo\n"


def test_append_line_refuses_embedded_newlines(tmp_path):
    with pytest.raises(ValueError):
        fsutil.append_line_durably(tmp_path / "log", "a\nb")
