"""RESULTS.md: the report as Markdown (for the tag message, a pull request, a quick read).

Template-owned. Renders a `report.ReportData`; no computation happens here.
"""

from __future__ import annotations

import math
from typing import Any

from .._report.model import ConfigStats, ReportData


def num(value: float | None, digits: int = 4) -> str:
    """A number for a table: 4 significant decimals, '-' for missing."""
    if value is None:
        return "-"
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}"


def ci(interval: tuple[float, float] | None, digits: int = 4) -> str:
    """An interval; an unbounded side (a quantile beyond the sample) reads "≤ min" or "≥ max"."""
    if interval is None:
        return "-"
    low = "≤ min" if interval[0] == -math.inf else num(interval[0], digits)
    high = "≥ max" if interval[1] == math.inf else num(interval[1], digits)
    return f"[{low}, {high}]"


def ms(value: float | None) -> str:
    """Seconds shown as milliseconds, 3 significant digits."""
    if value is None:
        return "-"
    value *= 1000
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def ms_ci(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "-"
    low = "≤ min" if interval[0] == -math.inf else ms(interval[0])
    high = "≥ max" if interval[1] == math.inf else ms(interval[1])
    return f"[{low}, {high}]"


def ranked(data: ReportData) -> list[ConfigStats]:
    """The configurations best first (the leaderboard order); those without a quality figure last."""
    if not data.quality_name:
        return list(data.configs)
    sign = -1 if data.higher_is_better else 1
    return sorted(data.configs, key=lambda c: (c.quality is None, sign * (c.quality or 0.0), c.label))


def pvalue(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    escape = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def quality_title(data: ReportData) -> str:
    return {"accuracy": "accuracy", "mae": "MAE (lower is better)"}.get(data.quality_name, "")


def config_rows(data: ReportData) -> tuple[list[str], list[list[Any]]]:
    """The leaderboard: one row per configuration, shared by both renderers."""
    header = ["configuration", "n", "errors", "cache hits"]
    no_truth = any(c.n_no_truth for c in data.configs) and data.quality_name
    if no_truth:
        header += ["no truth"]
    if data.quality_name == "accuracy":
        header += ["accuracy", "95% CI (Wilson)", "strict accuracy", "95% CI (Wilson)"]
    elif data.quality_name == "mae":
        header += ["MAE", "95% CI (bootstrap)"]
    header += ["error rate", "95% CI (Wilson)"]
    if any(c.cost_mean is not None for c in data.configs):
        header += ["cost / item", "95% CI (bootstrap)", "total cost"]
    header += ["Pareto"]
    rows = []
    for c in ranked(data):
        row: list[Any] = [c.label, c.n, c.n_failed, c.n_cache_hits] + ([c.n_no_truth] if no_truth else [])
        if data.quality_name == "accuracy":
            row += [num(c.accuracy), ci(c.accuracy_ci), num(c.accuracy_strict), ci(c.accuracy_strict_ci)]
        elif data.quality_name == "mae":
            row += [num(c.mae), ci(c.mae_ci)]
        row += [num(c.error_rate), ci(c.error_rate_ci)]
        if "cost / item" in header:
            row += [num(c.cost_mean, 6), ci(c.cost_mean_ci, 6), num(c.cost_total, 4)]
        row += ["yes" if c.pareto else ""]
        rows.append(row)
    return header, rows


def extra_rows(data: ReportData) -> tuple[list[str], list[list[Any]]]:
    """The other chosen metrics: macro scores with bootstrap intervals, the rest from the metrics table."""
    names = list(dict.fromkeys(name for c in data.configs for name in c.extra))
    if not names:
        return [], []
    header = ["configuration"]
    for name in names:
        with_ci = any(c.extra.get(name, (None, None))[1] for c in data.configs)
        header += [name, "95% CI (bootstrap)"] if with_ci else [name]
    rows = []
    for c in data.configs:
        row: list[Any] = [c.label]
        for name in names:
            value, interval = c.extra.get(name, (None, None))
            row += [num(value), ci(interval)] if _has_ci(header, name) else [num(value)]
        rows.append(row)
    return header, rows


def _has_ci(header: list[str], name: str) -> bool:
    at = header.index(name)
    return at + 1 < len(header) and header[at + 1].startswith("95% CI")


def latency_rows(data: ReportData) -> tuple[list[str], list[list[Any]]]:
    header = ["configuration", "n", "p50 (ms)", "95% CI", "p95 (ms)", "95% CI", "p99 (ms)", "95% CI", "mean (ms)",
              "95% CI (bootstrap)"]  # fmt: skip
    rows = []
    for c in ranked(data):
        row: list[Any] = [c.label, c.n_latency]
        for q in ("p50", "p95", "p99", "mean"):
            mark = "*" if q in c.latency_unreliable else ""
            row += [ms(c.latency.get(q)) + mark, ms_ci(c.latency_ci.get(q))]
        rows.append(row)
    return header, rows


def pair_rows(data: ReportData) -> tuple[list[str], list[list[Any]]]:
    binary = data.quality_name == "accuracy"
    what = "accuracy A − B (> 0 favours A)" if binary else "MAE A − B (< 0 favours A)"
    header = ["A", "B", "n shared", what, "95% CI (paired bootstrap)"]
    header += ["A only right", "B only right", "McNemar exact p"] if binary else ["bootstrap p"]
    header += ["Holm-adjusted p"]
    rows = []
    for p in data.pairs:
        if not p.n_shared:  # no shared input: nothing was compared
            rows.append([p.a, p.b, 0, *["–"] * (len(header) - 3)])
            continue
        row: list[Any] = [p.a, p.b, p.n_shared, num(p.difference), ci(p.ci)]
        row += [p.only_a, p.only_b, pvalue(p.p_mcnemar)] if binary else [pvalue(p.p_bootstrap)]
        row += [pvalue(p.p_holm)]
        rows.append(row)
    return header, rows


def segment_rows(cells: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    header = ["segment", "configuration", "n", "errors", "value", "95% CI", ""]
    rows = [
        [
            c["segment"],
            c["config"],
            c["n"],
            c["n_failed"],
            num(c.get("value")),
            ci(c.get("ci")),
            "n too small" if c["small"] else "",
        ]
        for c in cells
    ]
    return header, rows


def best(data: ReportData) -> ConfigStats | None:
    scored = [c for c in data.configs if c.quality is not None]
    if not scored:
        return None
    return (max if data.higher_is_better else min)(scored, key=lambda c: c.quality)


def render(data: ReportData) -> str:
    out = [f"# {data.project}: results of {data.version}", ""]
    out.append(f"Database `{data.db_name}`, kind `{data.kind}`, generated {data.generated}. Regenerate: `make report`.")
    out.append("")
    top = best(data)
    if top is not None:
        out += [f"**Best {quality_title(data)}: {top.label}** ({num(top.quality)}).", ""]
    out += [f"- {n}" for n in data.notes] + [""]
    out += ["## Metrics by configuration", "", table(*config_rows(data)), ""]
    header, rows = extra_rows(data)
    if rows:
        out += ["Other chosen metrics (intervals where the report computes them; the rest from the metrics table):", ""]
        out += [table(header, rows), ""]
    out += ["## Latency (successful rows; cache hits carry the latency they reuse)", "", table(*latency_rows(data)), ""]
    if data.pairs:
        out += ["## Paired comparisons (same inputs)", "", table(*pair_rows(data)), ""]
    for name, cells in data.segments.items():
        out += [f"## By {name}", ""]
        if name in data.segment_notes:
            out += [f"{data.segment_notes[name]}.", ""]
        out += [table(*segment_rows(cells)), ""]
    if data.errors:
        out += ["## Errors by type and configuration", ""]
        out += [
            table(
                ["configuration", "error_type", "count"],
                [[e["config"], e["error_type"], e["count"]] for e in data.errors],
            ),
            "",
        ]
    if data.disagreements:
        out += [
            f"## Inputs where configurations disagree ({len(data.disagreements)} of {data.n_disagreements} shown)",
            "",
            "Most informative first: an answer counts by how unexpected it is from its configuration "
            "(|correct − accuracy|), so a baseline that is always wrong adds nothing.",
            "",
        ]
        rows = [
            [
                d["input_id"],
                d["ground_truth"],
                a["config"],
                "yes" if a["correct"] else "no",
                a["prediction"],
                _short(a["raw_response"]),
            ]
            for d in data.disagreements
            for a in d["answers"]
        ]
        out += [table(["input_id", "ground truth", "configuration", "correct", "prediction", "raw response"], rows), ""]
    return "\n".join(out)


def _short(text: str | None, limit: int = 160) -> str:
    if text is None:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
