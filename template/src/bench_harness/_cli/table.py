"""Plain text tables for the terminal (shared by every command group)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core.config import BenchConfig


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table (numbers to 4 decimals)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return "" if value is None else str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def metrics_columns(rows: Sequence[dict[str, Any]], cfg: BenchConfig) -> list[str]:
    params = [k for k in rows[0] if k.startswith("params_")] if rows else []
    chosen = [m for m in cfg.metrics if any(m in r for r in rows)]
    rescored = ["scorer_version"] if any(r.get("scorer_version") for r in rows) else []  # rows of `make rescore`
    return ["experiment_version", *rescored, *params, "n", "n_failed", "n_cache_hits", *chosen]
