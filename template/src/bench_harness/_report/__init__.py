"""The report: its model (model.py) and two renderers of it (markdown.py, html.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._core.config import BenchConfig
from . import comparison as report_comparison
from . import html as report_html
from . import markdown as report_md
from .model import build


def write(
    cfg: BenchConfig, db_path: Path, out_root: Path, version: str | None = None, comparison: Any = None
) -> tuple[Path, Path]:
    """Build the report and write reports/<version>/RESULTS.md and report.html.

    `comparison` (a `_compare.model.Comparison` the caller built, or None) adds the section
    "Compared with the previous experiment", rendered by the same code as `make compare`.
    """
    data = build(cfg, db_path, version)
    folder = out_root / data.version
    folder.mkdir(parents=True, exist_ok=True)
    markdown, html = folder / "RESULTS.md", folder / "report.html"
    text = report_md.render(data)
    page = report_html.render(data)
    if comparison is not None:
        title = f"Compared with the previous experiment: {comparison.head.version} vs {comparison.base.version}"
        text += "\n" + report_comparison.markdown(comparison, heading="##", title=title)
        page = page.replace("</main>", report_comparison.html_section(comparison) + "\n</main>", 1)
    markdown.write_text(text, encoding="utf-8")
    html.write_text(page, encoding="utf-8")
    return markdown, html
