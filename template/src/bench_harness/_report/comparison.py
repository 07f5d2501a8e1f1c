"""The comparison of two experiments (`_compare.model.Comparison`) as Markdown and as an HTML section.

Template-owned. `make compare` prints the Markdown; `make report` adds both to RESULTS.md and
report.html as "Compared with the previous experiment". The object is passed in by the caller
(the CLI builds it), so the report never imports the comparison's git and DVC machinery.
"""

from __future__ import annotations

import html
from typing import Any

VERDICT_CLASS = {"regressed": "bad", "improved": "ok"}


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _ci(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _sig(value: float | None, sign: str = "") -> str:
    return "–" if value is None else f"{value:{sign}.3g}"


def _p(p: float | None) -> str:
    return "–" if p is None else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def change_rows(c: Any) -> list[list[str]]:
    rows = []
    for m in c.changes:
        flips = f"{m.flips[0]} / {m.flips[1]}" if m.flips else "–"
        if m.metric.startswith("latency"):  # seconds recorded, milliseconds shown: 3 significant digits
            ms = lambda v: None if v is None else v * 1000  # noqa: E731
            values = [
                _sig(ms(m.base)),
                _sig(ms(m.head)),
                _sig(ms(m.difference), "+"),
                "–" if m.ci is None else f"[{_sig(ms(m.ci[0]), '+')}, {_sig(ms(m.ci[1]), '+')}]",
            ]
            name, detect = f"{m.metric} (ms)", _sig(ms(m.min_detectable))
        else:
            values = [_num(m.base), _num(m.head), _signed(m.difference), _ci(m.ci)]
            name, detect = m.metric, _num(m.min_detectable)
        rows.append(
            [m.config, name + (" (lower is better)" if m.lower_is_better else ""), str(m.n_shared), *values,
             m.test, _p(m.p_holm), flips, detect, m.verdict]
        )  # fmt: skip
    return rows


CHANGE_HEADER = ["configuration", "metric", "shared n", "base", "head", "head − base", "95% CI", "test",
                 "p (Holm)", "right→wrong / wrong→right", "could detect", "verdict"]  # fmt: skip


def attribution_lines(c: Any) -> list[str]:
    a = c.attribution
    lines = [f"- code commit: {c.base.commit or '–'} → {c.head.commit or '–'}"]
    for f in a.files:
        counts = "binary" if f["added"] is None else f"+{f['added']} −{f['removed']}"
        lines.append(f"  - `{f['path']}` ({counts}{', template-owned' if f['owner'] == 'template' else ''})")
    d = a.data
    lines.append(
        f"- data: digest {d['base_digest']} → {d['head_digest']} (data commit {d['base_commit'] or '–'} → "
        f"{d['head_commit'] or '–'}): {d['added']} input(s) added, {d['removed']} removed, "
        f"{d['changed']} changed by content"
    )
    for what in ("added", "removed", "changed"):
        if d["examples"][what]:
            lines.append(f"  - {what}: {', '.join(map(str, d['examples'][what]))}")
    lines.append(
        f"- parameter grid: {len(a.configs_added)} configuration(s) added"
        + (f" ({'; '.join(a.configs_added)})" if a.configs_added else "")
        + f", {len(a.configs_removed)} removed"
        + (f" ({'; '.join(a.configs_removed)})" if a.configs_removed else "")
    )
    for config, b, h in a.model_versions:
        lines.append(f"- recorded version (model_version, else predict code_version) of {config}: {b} → {h}")
    for name, b, h in a.dependencies:
        lines.append(f"- dependency {name}: {b} → {h}")
    if a.template:
        lines.append(f"- template release: {a.template[0]} → {a.template[1]}")
    for name, b, h in a.environment:
        lines.append(f"- {name}: {b or '–'} → {h or '–'}")
    lines += [f"- note: {n}" for n in a.notes]
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(clean(v) for v in r) + " |" for r in rows
    ]


def markdown(c: Any, heading: str = "#", title: str | None = None) -> str:
    """The whole comparison: what changed, what moved, the verdicts, flipped inputs."""
    regressed = c.regressions
    verdict = (
        f"**REGRESSED**: {_regression_text(regressed)}"
        if regressed
        else "**No significant regression** of the gated metrics."
    )
    title = title or f"{c.head.version} compared with {c.base.version}"
    out = [
        f"{heading} {title}",
        "",
        verdict,
        "",
        f"{heading}# What changed",
        "",
    ]
    out += attribution_lines(c)
    out += ["", f"{heading}# What moved (paired on {c.n_shared_inputs} shared inputs)", ""]
    out += _table(CHANGE_HEADER, change_rows(c)) if c.changes else ["No configuration ran on shared inputs."]
    if c.segments:
        out += ["", f"{heading}# Accuracy by segment (shared inputs; exploratory, not corrected)", ""]
        rows = [[s.segmentation, s.segment, s.config, str(s.n_shared), _num(s.base), _num(s.head),
                 _signed(s.difference), _ci(s.ci)] for s in c.segments]  # fmt: skip
        out += _table(["segmentation", "value", "configuration", "n", "base", "head", "head − base", "95% CI"], rows)
    if c.n_flips:
        out += ["", f"{heading}# Flipped inputs ({len(c.flips)} of {c.n_flips} shown, right→wrong first)", ""]
        rows = [[f.config, str(f.input_id), f.direction, str(f.ground_truth), str(f.base_prediction),
                 str(f.head_prediction), _short(f.base_raw), _short(f.head_raw)] for f in c.flips]  # fmt: skip
        out += _table(["configuration", "input", "flip", "truth", "base", "head", "base raw", "head raw"], rows)
    out += ["", f"{heading}# Notes", ""] + [f"- {n}" for n in c.notes]
    return "\n".join(out) + "\n"


def _short(text: str | None, limit: int = 160) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _regression_text(regressed: list[Any]) -> str:
    return "; ".join(f"{r.config} {r.metric} {_signed(r.difference)}" for r in regressed)


def _expandable(raw: str | None) -> str:
    """A raw response folded to its start; the whole text one click away (and visible to a text search)."""
    return f"<details><summary>{_esc(_short(raw, 40))}</summary><pre>{_esc(raw)}</pre></details>"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def html_section(c: Any) -> str:
    """The comparison as an HTML section for report.html (tables sortable by the report's script)."""
    regressed = c.regressions
    status = (
        f"<p class='bad'><b>Regressed:</b> {_esc(_regression_text(regressed))}</p>"
        if regressed
        else "<p class='ok'><b>No significant regression</b> of the gated metrics.</p>"
    )
    parts = [
        f"<h2 id='compare'>Compared with the previous experiment: {_esc(c.head.version)} "
        f"vs {_esc(c.base.version)}</h2>",
        status,
    ]
    parts.append("<h3>What changed</h3><ul class='attribution'>")
    for line in attribution_lines(c):
        indent = line.startswith("  ")
        parts.append(f"<li{' class=sub' if indent else ''}>{_esc(line.strip().removeprefix('- '))}</li>")
    parts.append("</ul>")
    parts.append(f"<h3>What moved (paired on {c.n_shared_inputs} shared inputs)</h3>")
    rows = change_rows(c)
    body = "".join(
        f"<tr class='{VERDICT_CLASS.get(m.verdict, '')}'>" + "".join(
            f"<td class='num'>{_esc(v)}</td>" if 1 < i < 11 else f"<td>{_esc(v)}</td>" for i, v in enumerate(r)
        ) + "</tr>"
        for m, r in zip(c.changes, rows, strict=True)
    )  # fmt: skip
    parts.append(
        "<div class='scroll'><table class='sortable'><thead><tr>"
        + "".join(f"<th>{_esc(h)}</th>" for h in CHANGE_HEADER)
        + f"</tr></thead><tbody>{body}</tbody></table></div>"
    )
    if c.n_flips:
        parts.append(f"<h3>Flipped inputs ({len(c.flips)} of {c.n_flips} shown, right→wrong first)</h3>")
        rows_html = "".join(
            f"<tr><td>{_esc(f.config)}</td><td>{_esc(f.input_id)}</td>"
            f"<td class='{'bad' if f.direction.startswith('right') else 'ok'}'>"
            f"{_esc(f.direction)}</td><td>{_esc(f.ground_truth)}</td><td>{_esc(f.base_prediction)}</td>"
            f"<td>{_esc(f.head_prediction)}</td><td>{_expandable(f.base_raw)}</td><td>{_expandable(f.head_raw)}</td></tr>"
            for f in c.flips
        )
        parts.append(
            "<div class='scroll'><table class='sortable'><thead><tr><th>configuration</th><th>input</th><th>flip</th>"
            "<th>truth</th><th>base</th><th>head</th><th>base raw response</th><th>head raw response</th></tr></thead>"
            f"<tbody>{rows_html}</tbody></table></div>"
        )
    parts.append("<ul class='notes'>" + "".join(f"<li>{_esc(n)}</li>" for n in c.notes) + "</ul>")
    return "\n".join(parts)
