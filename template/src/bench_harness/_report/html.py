"""report.html: one self-contained file (inline CSS, SVG and a small script; no network).

Template-owned. Renders a `report.ReportData` with hand-written SVG: no plotting library, nothing
fetched, so the file opens the same from a laptop, a CI artifact or an e-mail attachment. The inline
script only helps (click a column header to sort, type to filter a long table); with scripts off
every table and every raw response (<details>) is still there and readable.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from .._report.markdown import (
    best,
    config_rows,
    extra_rows,
    latency_rows,
    num,
    pair_rows,
    quality_title,
    ranked,
    segment_rows,
)
from .._report.model import ReportData

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
.meta{color:#5b6670}.card{background:#fff;border:1px solid #dfe3e8;border-radius:8px;padding:12px 16px;margin:12px 0}
.best{font-size:16px}.notes li{color:#38434d}
table{border-collapse:collapse;width:100%;font-size:13px;background:#fff}
th,td{border:1px solid #e1e5ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.front td:first-child{font-weight:600}.small{color:#a33}.ok{color:#1a7f37}.bad{color:#b42318}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;max-height:9em;overflow:auto}
svg text{font-family:system-ui,sans-serif;font-size:12px;fill:#1d2329}.scroll{overflow-x:auto}
svg text.axis{fill:#5b6670}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
.js th{cursor:pointer}input.filter{margin:4px 0;padding:3px 6px;font:inherit;width:280px}
.legend{display:inline-block;width:160px;height:10px;vertical-align:middle;border:1px solid #ccd}
li.sub{margin-left:1.5em;list-style:circle}
"""
# Sort any table by a header click (numbers as numbers), filter the tables marked data-filter.
SCRIPT = """
document.documentElement.classList.add('js');
function cellValue(row, i) {
  const text = (row.cells[i] ? row.cells[i].textContent : '').trim();
  const n = parseFloat(text.replace(/^[\\[<≤≥]\\s*/, ''));
  return isNaN(n) ? text.toLowerCase() : n;
}
document.querySelectorAll('table').forEach(function (table) {
  if (table.querySelector('[rowspan]')) return;
  table.querySelectorAll('thead th').forEach(function (th, i) {
    th.title = 'sort';
    th.addEventListener('click', function () {
      const body = table.tBodies[0];
      const asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      Array.from(body.rows).sort(function (a, b) {
        const x = cellValue(a, i), y = cellValue(b, i);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.querySelectorAll('[data-filter]').forEach(function (box) {
  const input = document.createElement('input');
  input.className = 'filter';
  input.placeholder = 'filter rows…';
  input.addEventListener('input', function () {
    const q = input.value.toLowerCase();
    box.querySelectorAll('tbody tr').forEach(function (row) {
      row.style.display = row.textContent.toLowerCase().includes(q) ? '' : 'none';
    });
  });
  box.parentNode.insertBefore(input, box);
});
"""
BLUE, GREY, RED = "#2f6fdb", "#9aa5b1", "#c4314b"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _scale(lo: float, hi: float, a: float, b: float, log: bool = False):
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
        span = (hi - lo) or 1.0
        return lambda v: a + (math.log10(max(v, 1e-300)) - lo) / span * (b - a)
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _ticks(lo: float, hi: float, count: int = 5, log: bool = False) -> list[float]:
    if log:
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        steps = (1, 2, 5) if last - first <= 3 else (1,)
        found = [m * 10.0**e for e in range(first, last + 1) for m in steps]
        return [t for t in found if lo <= t <= hi] or [lo, hi]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= step * m)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _range(values: Sequence[float | None], zero: bool = False) -> tuple[float, float]:
    found = [v for v in values if v is not None and math.isfinite(v)]
    if zero:
        found.append(0.0)
    if not found:
        return 0.0, 1.0
    lo, hi = min(found), max(found)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.1 or 1.0
    return lo - pad, hi + pad


def _log_range(values: Sequence[float | None]) -> tuple[float, float] | None:
    """A log axis when the positive values span two decades or more (latency, cost): else None."""
    found = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if len(found) < 2 or max(found) / min(found) < 100 or len(found) != len([v for v in values if v is not None]):
        return None
    return min(found) / 1.3, max(found) * 1.3


def _label_width(labels: Sequence[str]) -> int:
    """Room for the longest label (about 7 px a character): labels are never cut."""
    return max(120, min(900, 12 + 7 * max((len(x) for x in labels), default=10)))


def interval_chart(
    items: list[dict[str, Any]], title: str, zero_line: bool = False, axis: str = "", note: str = ""
) -> str:
    """Horizontal dot-and-whisker chart: one row per item {label, value, ci, highlight}."""
    if not items:
        return ""
    left, row = _label_width([it["label"] for it in items]), 26
    width = max(820, left + 580)
    height = 40 + row * len(items) + 48
    bounds = [v for it in items for v in (it["value"], *(it.get("ci") or ()))]
    lo, hi = _range(bounds, zero=zero_line)
    x = _scale(lo, hi, left, width - 20)
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{esc(title)}">']
    heading = f"{title} ({note})" if note else title
    parts.append(f'<text x="10" y="18" font-weight="600">{esc(heading)}</text>')
    axis_y = 30 + row * len(items)
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{x(t):.1f}" y1="28" x2="{x(t):.1f}" y2="{axis_y}" stroke="#e6e9ed"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{esc(_tick(t))}</text>')
    if axis:
        parts.append(
            f'<text x="{(left + width - 20) / 2:.0f}" y="{axis_y + 36}" text-anchor="middle" class="axis">'
            f"{esc(axis)}</text>"
        )
    if zero_line and lo <= 0 <= hi:
        parts.append(
            f'<line x1="{x(0):.1f}" y1="28" x2="{x(0):.1f}" y2="{axis_y}" stroke="#333" stroke-dasharray="4 3"/>'
        )
    for i, it in enumerate(items):
        y = 30 + row * i + row / 2
        colour = BLUE if it.get("highlight", True) else GREY
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(it["label"])}</text>')
        if it.get("ci"):
            a, b = it["ci"]
            parts.append(
                f'<line x1="{x(a):.1f}" y1="{y:.1f}" x2="{x(b):.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        if it["value"] is not None:
            parts.append(f'<circle cx="{x(it["value"]):.1f}" cy="{y:.1f}" r="5" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def latency_chart(data: ReportData) -> str:
    """p50, p95 and p99 of each configuration (milliseconds) as three marks on one line; log axis over decades."""
    rows = [c for c in ranked(data) if c.latency.get("p50") is not None]
    if not rows:
        return ""
    left, row = _label_width([c.short for c in rows]), 26
    width = max(820, left + 580)
    height = 60 + row * len(rows) + 48
    values = [c.latency[q] * 1000 for c in rows for q in ("p50", "p95", "p99") if c.latency.get(q) is not None]
    log = _log_range(values)
    lo, hi = log or _range(values, zero=True)
    lo = lo if log else max(lo, 0.0)
    x = _scale(lo, hi, left, width - 20, log=bool(log))
    marks = (("p50", BLUE, 5), ("p95", "#e08a00", 5), ("p99", RED, 5))
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="latency percentiles">']
    title = f"Latency percentiles{varying(data)}"
    parts.append(f'<text x="10" y="18" font-weight="600">{esc(title)}</text>')
    for j, (name, colour, _) in enumerate(marks):
        parts.append(f'<circle cx="{left + 90 * j + 6}" cy="36" r="5" fill="{colour}"/>')
        parts.append(f'<text x="{left + 90 * j + 16}" y="40">{name}</text>')
    axis_y = 52 + row * len(rows)
    for t in _ticks(lo, hi, log=bool(log)):
        parts.append(f'<line x1="{x(t):.1f}" y1="50" x2="{x(t):.1f}" y2="{axis_y}" stroke="#e6e9ed"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{esc(_tick(t))}</text>')
    axis = "latency (ms, log scale)" if log else "latency (ms)"
    parts.append(
        f'<text x="{(left + width - 20) / 2:.0f}" y="{axis_y + 36}" text-anchor="middle" class="axis">{axis}</text>'
    )
    for i, c in enumerate(rows):
        y = 52 + row * i + row / 2
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(c.short)}</text>')
        p99 = c.latency.get("p99") or c.latency["p50"]
        parts.append(
            f'<line x1="{x(c.latency["p50"] * 1000):.1f}" y1="{y:.1f}" x2="{x(p99 * 1000):.1f}" y2="{y:.1f}" '
            'stroke="#c9d1da"/>'
        )
        for name, colour, r in marks:
            if c.latency.get(name) is not None:
                parts.append(
                    f'<circle cx="{x(c.latency[name] * 1000):.1f}" cy="{y:.1f}" r="{r}" fill="{colour}">'
                    f"<title>{esc(c.label)} {name}: {c.latency[name] * 1000:.3g} ms</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def pareto_chart(data: ReportData) -> str:
    """Quality against cost (or latency): the non-dominated configurations joined by a line."""
    use_cost = data.cost_axis.startswith("cost")
    scale = 1.0 if use_cost else 1000.0  # latency in milliseconds
    points = [
        (c, (c.cost_mean if use_cost else c.latency.get("p50")) * scale, c.quality)
        for c in data.configs
        if c.quality is not None and (c.cost_mean if use_cost else c.latency.get("p50")) is not None
    ]
    if not points:
        return ""
    width, height, left, bottom = 820, 400, 78, 330
    log = _log_range([p[1] for p in points])
    xlo, xhi = log or _range([p[1] for p in points])
    ylo, yhi = _range([v for c, _, q in points for v in (q, *((c.accuracy_ci or c.mae_ci) or ()))])
    x, y = _scale(xlo, xhi, left, width - 30, log=bool(log)), _scale(ylo, yhi, bottom, 50)
    x_name = ("cost per item (USD)" if use_cost else "latency p50 (ms)") + (", log scale" if log else "")
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="Pareto front">']
    parts.append(
        f'<text x="10" y="18" font-weight="600">'
        f"{esc(quality_title(data))} against {esc(x_name)}{esc(varying(data))}</text>"
    )
    legend = ((BLUE, "not dominated (on the front)"), (GREY, "dominated"))
    for j, (colour, text) in enumerate(legend):
        parts.append(f'<circle cx="{left + 6 + 230 * j}" cy="36" r="5" fill="{colour}"/>')
        parts.append(f'<text x="{left + 16 + 230 * j}" y="40">{text}</text>')
    parts.append(
        f'<line x1="{left + 460}" y1="36" x2="{left + 490}" y2="36" stroke="{BLUE}" stroke-dasharray="5 3"/>'
        f'<text x="{left + 498}" y="40">the front · whiskers: 95% intervals</text>'
    )
    for t in _ticks(xlo, xhi, log=bool(log)):
        parts.append(f'<line x1="{x(t):.1f}" y1="50" x2="{x(t):.1f}" y2="{bottom}" stroke="#eef0f3"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{bottom + 16}" text-anchor="middle">{esc(_tick(t))}</text>')
    for t in _ticks(ylo, yhi):
        parts.append(f'<line x1="{left}" y1="{y(t):.1f}" x2="{width - 30}" y2="{y(t):.1f}" stroke="#eef0f3"/>')
        parts.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{esc(_tick(t))}</text>')
    parts.append(
        f'<text x="{(left + width) / 2:.0f}" y="{bottom + 40}" text-anchor="middle" class="axis">{esc(x_name)}</text>'
        f'<text x="16" y="{(bottom + 50) / 2:.0f}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 16 {(bottom + 50) / 2:.0f})">{esc(quality_title(data))}</text>'
    )
    front = sorted((p for p in points if p[0].pareto), key=lambda p: p[1])
    if len(front) > 1:
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for _, px, py in front)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{BLUE}" stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
    for i, (c, px, py) in enumerate(sorted(points, key=lambda p: (p[1], p[2]))):
        colour = BLUE if c.pareto else GREY
        interval = c.accuracy_ci or c.mae_ci
        if interval:
            parts.append(
                f'<line x1="{x(px):.1f}" y1="{y(interval[0]):.1f}" x2="{x(px):.1f}" y2="{y(interval[1]):.1f}" '
                f'stroke="{colour}"/>'
            )
        parts.append(
            f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="6" fill="{colour}"><title>{esc(c.label)}</title></circle>'
        )
        anchor = "end" if x(px) > width * 0.7 else "start"
        shift = -9 if anchor == "end" else 9
        ty = y(py) - 9 if i % 2 == 0 else y(py) + 18  # neighbours alternate above and below their point
        parts.append(f'<text x="{x(px) + shift:.1f}" y="{ty:.1f}" text-anchor="{anchor}">{esc(c.short)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _tick(t: float) -> str:
    """Axis numbers people read: 2,000 not 2e+03; 0.0005 not 5e-04 (down to 1e-4)."""
    if t != 0 and (abs(t) >= 1000 or abs(t) < 1e-4):
        return f"{t:,.0f}" if abs(t) >= 1000 else f"{t:.0e}"
    return f"{t:.4g}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_table(
    header: list[str], rows: list[list[Any]], row_classes: list[str] | None = None, filterable: bool = False
) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{esc(v)}</td>' if _numeric(v) else f"<td>{esc(v)}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    box = ' data-filter=""' if filterable or len(rows) > 15 else ""
    return f'<div class="scroll"{box}><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _numeric(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    text = str(value).rstrip("*").replace(",", "") if not str(value).startswith("[") else str(value)
    try:
        float(text)
    except ValueError:
        return text.startswith("[") and text.endswith("]") and "," in text
    return True


def heatmap(data: ReportData, name: str, cells: list[dict[str, Any]]) -> str:
    """Segment × configuration table coloured by the value, each cell with its n and interval."""
    segments = list(dict.fromkeys(c["segment"] for c in cells))
    configs = [c.label for c in data.configs]
    lookup = {(c["segment"], c["config"]): c for c in cells}
    values = [c["value"] for c in cells if c.get("value") is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    head = "".join(f"<th>{esc(c)}</th>" for c in configs)
    rows = []
    for s in segments:
        tds = []
        for label in configs:
            cell = lookup.get((s, label))
            if cell is None:
                tds.append("<td></td>")
                continue
            share = 0.5 if hi == lo or cell.get("value") is None else (cell["value"] - lo) / (hi - lo)
            if not data.higher_is_better:
                share = 1 - share
            colour = f"hsl({int(share * 120)},60%,88%)"
            interval = cell.get("ci")
            small = ' <span class="small">n too small</span>' if cell["small"] else ""
            tds.append(
                f'<td style="background:{colour}"><b>{esc(num(cell.get("value")))}</b><br>'
                f'<span class="meta">n={cell["n"]}{" " + esc(_ci(interval)) if interval else ""}</span>{small}</td>'
            )
        rows.append(f"<tr><th>{esc(s)}</th>{''.join(tds)}</tr>")
    title = f"{quality_title(data)} by {name} (rows) and configuration (columns)"
    red, green = "hsl(0,60%,88%)", "hsl(120,60%,88%)"
    low, high = (red, green) if data.higher_is_better else (green, red)
    legend = (
        f' · colour scale: {esc(num(lo))} <span class="legend" style="background:linear-gradient(90deg,{low},{high})">'
        f"</span> {esc(num(hi))} ({'greener is better' if data.higher_is_better else 'greener is lower, better'})"
    )
    return (
        f"<p class=meta>{esc(title)}{legend}</p><div class=scroll><table>"
        f"<thead><tr><th>{esc(name)}</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _ci(interval: tuple[float, float]) -> str:
    return f"[{num(interval[0], 3)}, {num(interval[1], 3)}]"


def disagreement_table(data: ReportData) -> str:
    rows = []
    for d in data.disagreements:
        span = len(d["answers"])
        for i, a in enumerate(d["answers"]):
            first = (
                f'<td rowspan="{span}">{esc(d["input_id"])}</td><td rowspan="{span}">{esc(d["ground_truth"])}</td>'
                if i == 0
                else ""
            )
            mark = '<span class="ok">right</span>' if a["correct"] else '<span class="bad">wrong</span>'
            rows.append(
                f"<tr>{first}<td>{esc(a['config'])}</td><td>{mark}</td><td>{esc(a['prediction'])}</td>"
                f"<td>{_raw(a['raw_response'])}</td></tr>"
            )
    head = "".join(
        f"<th>{h}</th>" for h in ("input_id", "ground truth", "configuration", "", "prediction", "raw response")
    )
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _raw(text: str | None) -> str:
    """A raw response: its start on one line, the whole text one click away (no script needed)."""
    text = "" if text is None else str(text)
    if len(text) <= 80:
        return f"<pre>{esc(text)}</pre>"
    return f"<details><summary>{esc(text[:77])}…</summary><pre>{esc(text)}</pre></details>"


def varying(data: ReportData) -> str:
    """The parameters that differ between configurations: the charts label points by their values."""
    names = [part.split("=", 1)[0] for part in data.configs[0].label.split(", ") if "=" in part]
    return f" (configurations: {', '.join(names)})" if names else ""


def render(data: ReportData) -> str:
    """The whole page."""
    top = best(data)
    quality_items = [
        {"label": c.short, "value": c.quality, "ci": c.accuracy_ci or c.mae_ci}
        for c in ranked(data)
        if c.quality is not None
    ]
    body = [f"<h1>{esc(data.project)}: {esc(data.version)}</h1>"]
    body.append(
        f'<p class="meta">database {esc(data.db_name)} · kind {esc(data.kind)} · generated {esc(data.generated)} · '
        f"{sum(c.n for c in data.configs)} predictions, {len(data.configs)} configurations</p>"
    )
    if top is not None:
        body.append(
            f'<div class="card best">Best {esc(quality_title(data))}: <b>{esc(top.label)}</b> '
            f"({esc(num(top.quality))})</div>"
        )
    body.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in data.notes) + "</ul>")
    body.append("<h2>Metrics by configuration</h2>")
    if quality_items:
        title = f"{quality_title(data)} with 95% intervals, best first{varying(data)}"
        body.append(f'<div class="card">{interval_chart(quality_items, title, axis=quality_title(data))}</div>')
    header, rows = config_rows(data)
    body.append(html_table(header, rows, ["front" if c.pareto else "" for c in ranked(data)]))
    header, rows = extra_rows(data)
    if rows:
        body.append(
            '<p class="meta">Other chosen metrics (intervals where the report computes them; the rest from '
            "the metrics table):</p>" + html_table(header, rows)
        )
    body.append("<h2>Quality against cost: the Pareto front</h2>")
    chart = pareto_chart(data)
    body.append(
        f'<div class="card">{chart}<p class="meta">Not dominated: no other configuration is at least as '
        "good on both axes and better on one.</p></div>"
        if chart
        else "<p>No quality or cost to plot.</p>"
    )
    body.append("<h2>Latency</h2>")
    body.append(f'<div class="card">{latency_chart(data)}</div>')
    body.append(html_table(*latency_rows(data)))
    if data.pairs:
        body.append("<h2>Paired comparisons on the same inputs</h2>")
        items = [
            {"label": p.short, "value": p.difference, "ci": p.ci, "highlight": (p.p_holm or 1) < 0.05}
            for p in data.pairs
            if p.n_shared
        ]
        favours = "right of 0 favours A" if data.higher_is_better else "left of 0 favours A (lower MAE)"
        what = f"{quality_title(data)} difference A − B"
        chart = interval_chart(items, f"{what}, 95% paired bootstrap", zero_line=True, axis=what, note=favours)
        body.append(
            f'<div class="card">{chart}<p class="meta">Each label reads "A − B". Blue: significant after Holm '
            f"correction (p &lt; 0.05); grey: not. {esc(favours.capitalize())}.</p></div>"
        )
        body.append(html_table(*pair_rows(data)))
    for name, cells in data.segments.items():
        body.append(f"<h2>By {esc(name)}</h2>")
        if name in data.segment_notes:
            body.append(f'<p class="meta">{esc(data.segment_notes[name])}.</p>')
        if data.quality_name:
            body.append(heatmap(data, name, cells))
        else:
            body.append(html_table(*segment_rows(cells)))
    if data.errors:
        body.append("<h2>Errors by type and configuration</h2>")
        body.append(
            html_table(
                ["configuration", "error_type", "count"],
                [[e["config"], e["error_type"], e["count"]] for e in data.errors],
            )
        )
    if data.disagreements:
        body.append(
            f"<h2>Inputs where configurations disagree ({len(data.disagreements)} of {data.n_disagreements} "
            "shown)</h2><p class=meta>Most informative first: an answer counts by how unexpected it is from its "
            "configuration (|correct − accuracy|), so a baseline that is always wrong adds nothing.</p>"
        )
        body.append(disagreement_table(data))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{esc(data.project)} {esc(data.version)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main><script>{SCRIPT}</script></body></html>\n"
    )
