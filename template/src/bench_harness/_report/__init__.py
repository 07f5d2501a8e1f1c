"""The report: its model (model.py) and two renderers of it (markdown.py, html.py)."""

from __future__ import annotations

from pathlib import Path

from .._core.config import BenchConfig
from . import html as report_html
from . import markdown as report_md
from .model import build


def write(cfg: BenchConfig, db_path: Path, out_root: Path, version: str | None = None) -> tuple[Path, Path]:
    """Build the report and write reports/<version>/RESULTS.md and report.html."""
    data = build(cfg, db_path, version)
    folder = out_root / data.version
    folder.mkdir(parents=True, exist_ok=True)
    markdown, html = folder / "RESULTS.md", folder / "report.html"
    markdown.write_text(report_md.render(data), encoding="utf-8")
    html.write_text(report_html.render(data), encoding="utf-8")
    return markdown, html
