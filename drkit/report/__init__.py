"""Run reports: one model built from the journal, written as JSON, Markdown,
JUnit XML and HTML (with a timeline chart).

The model is derived from the journal alone (plus the runbook's titles), so a
report can be rebuilt for any past run: ``drkit report RUN_ID``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drkit.fsutil import atomic_write_json, atomic_write_text
from drkit.report.html import to_html
from drkit.report.junit import to_junit
from drkit.report.markdown import to_markdown
from drkit.report.model import build_model, outcome, refused_by_preflight


def write_reports(run_dir: Path, *, runbook: Any, targets: dict[str, float],
                  dry_run_summary: list[str] | None = None) -> dict[str, Path]:
    """Write report.json, report.md, junit.xml and report.html into ``run_dir``."""
    model = build_model(run_dir, runbook=runbook, targets=targets,
                        dry_run_summary=dry_run_summary or [])
    paths = {
        "json": run_dir / "report.json",
        "md": run_dir / "report.md",
        "junit": run_dir / "junit.xml",
        "html": run_dir / "report.html",
    }
    atomic_write_json(paths["json"], model)
    atomic_write_text(paths["md"], to_markdown(model))
    atomic_write_text(paths["junit"], to_junit(model))
    atomic_write_text(paths["html"], to_html(model))
    return paths


__all__ = ["build_model", "outcome", "refused_by_preflight", "write_reports"]
