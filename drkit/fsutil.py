"""Crash-safe file writes: state that must survive a crash is written atomically
or appended and fsynced.

A DR tool is run while things are breaking; a run may be killed at any instant.
These helpers make sure a reader afterwards sees either the old content or the
new one (atomic replace), or every line that was appended before the kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry (a create, rename or unlink in it) to disk."""
    fd = os.open(os.fspath(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp_beside(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a fresh, fsynced temporary file in ``path``'s directory.

    The caller moves it into place (rename or link) and removes it on failure.
    Same directory, so the move never crosses a filesystem.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees all of it or none of it.

    Temp file in the same directory, fsync the file, rename over the target,
    fsync the directory so the rename itself survives a power cut.
    """
    target = Path(path)
    tmp = write_temp_beside(target, text)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON with a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_line_durably(fh_or_path: TextIO | str | os.PathLike[str], line: str) -> None:
    """Append one line and return only once it is on disk (write, flush, fsync).

    ``line`` must not contain a newline; one is added. Given a path, the file is
    opened in append mode, created if missing, and closed again.
    """
    if "\n" in line:
        raise ValueError("append_line_durably: line must not contain a newline")
    if isinstance(fh_or_path, (str, os.PathLike)):
        path = Path(fh_or_path)
        created = not path.exists()
        with open(path, "a", encoding="utf-8") as fh:
            _append(fh, line)
        if created:
            fsync_dir(path.parent)
        return
    _append(fh_or_path, line)


def _append(fh: TextIO, line: str) -> None:
    fh.write(line + "\n")
    fh.flush()
    os.fsync(fh.fileno())
