"""Finding and reading runbook files: one by path, all in a directory, one by id.

``load_runbook`` reads a file and hands the YAML to ``validate.py``; it refuses the
file with every problem at once. ``resolve_runbook`` turns what an operator typed
(a path or an id such as ``rb-dr-003``) into a file, reading only the ids, so one
broken runbook does not stop another from running.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from drkit.errors import ConfigError
from drkit.runbook.model import Runbook
from drkit.runbook.validate import build_runbook
from drkit.schema import Problems, YAMLSyntaxError, load_yaml, suggest


def load_runbook(path: Path) -> Runbook:
    """Load and validate one runbook file.

    Raises ConfigError("runbook <path> has N problems", problems=[...]) listing
    every problem in the file, each ``dotted.path: problem (line N)``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"runbook {path} cannot be read: {exc.strerror or exc}") from exc
    problems = Problems()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")
        _raise_if(problems, path)
    try:
        raw = load_yaml(text, problems)
    except YAMLSyntaxError as exc:
        problems.add("", f"invalid YAML: {exc.problem}", line=exc.line)
        _raise_if(problems, path)
    runbook = build_runbook(raw, path, hashlib.sha256(data).hexdigest(), problems)
    _raise_if(problems, path)
    assert runbook is not None
    return runbook


def _raise_if(problems: Problems, path: Path) -> None:
    if problems:
        count = len(problems)
        raise ConfigError(
            f"runbook {path} has {count} problem{'s' if count != 1 else ''}",
            problems=problems.messages(),
            hint="fix them and run again; nothing was run",
        )


def load_runbooks(directory: Path) -> list[Runbook]:
    """Load every *.yml / *.yaml runbook in ``directory``, sorted by id.

    Problems of all files are reported together, each prefixed with its file
    name; two files with the same runbook id are an error.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"runbook directory {directory} does not exist")
    problems: list[str] = []
    by_id: dict[str, Path] = {}
    runbooks: list[Runbook] = []
    for file in _runbook_files(directory):
        try:
            runbook = load_runbook(file)
        except ConfigError as exc:
            problems.extend(f"{file.name}: {p}" for p in (exc.problems or [exc.message]))
            continue
        if runbook.id in by_id:
            problems.append(f"{file.name}: id: {runbook.id} is also the id of "
                            f"{by_id[runbook.id].name}; runbook ids must be unique")
            continue
        by_id[runbook.id] = file
        runbooks.append(runbook)
    if problems:
        raise ConfigError(f"runbooks in {directory} have {len(problems)} problem"
                          f"{'s' if len(problems) != 1 else ''}", problems=problems)
    return sorted(runbooks, key=lambda r: r.id)


def _runbook_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml"))


_ID_LINE = re.compile(r"^id:\s*[\"']?([^\"'\s#]+)", re.MULTILINE)


def resolve_runbook(ref: str, directory: Path) -> Path:
    """The runbook file ``ref`` names: a path to a file, or an id (``rb-dr-003``
    matches ``RB-DR-003``, case-insensitively) among the files in ``directory``.

    Only ids are read here, so one broken runbook does not stop an operator from
    running another. Unknown refs raise ConfigError listing the known ids.
    """
    directory = Path(directory)
    candidate = Path(ref)
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute() and (directory / candidate).is_file():
        return directory / candidate
    found: dict[str, list[Path]] = {}
    if directory.is_dir():
        for file in _runbook_files(directory):
            runbook_id = _peek_id(file)
            if runbook_id:
                found.setdefault(runbook_id.upper(), []).append(file)
    matches = found.get(ref.strip().upper(), [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches)
        raise ConfigError(f"runbook id {ref} is used by several files: {names}",
                          hint="runbook ids must be unique; rename one")
    known = ", ".join(sorted(found)) or "none"
    raise ConfigError(f"no runbook {ref!r} in {directory}{suggest(ref.upper(), found)}",
                      hint=f"known runbooks: {known}")


def _peek_id(file: Path) -> str | None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = yaml.safe_load(text)
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            return data["id"]
    except yaml.YAMLError:
        pass
    match = _ID_LINE.search(text)
    return match.group(1) if match else None
