"""`make report`: RESULTS.md and one self-contained report.html per experiment version.

Template-owned. Every aggregation runs in DuckDB over the SQLite file (counts, sums, quantiles,
the paired join), so the report scales to millions of rows; Python only receives per-configuration
counts and, for latency, one float array per configuration. Intervals come from stats.py:

* accuracy, strict accuracy and error rate: Wilson score intervals;
* latency percentiles: computed rows only (a cache hit repeats an old measurement), with
  distribution-free order-statistic intervals; latency and cost means: bootstrap;
* pairs of configurations on the inputs both answered: paired bootstrap interval of the
  difference, exact McNemar for binary correctness, Holm's correction across the pairs.

A row is correct under the kind's correctness rule (benchmark.toml [analysis] correct; the registry's
SQL form of the rule metrics.py runs in Python: 1, '1' and 1.0 are equal; a ranking is correct when
its first item is relevant). `make rescore` stores the current
scoring.parse_prediction in `scored_prediction`; the report uses that column when it is filled.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from .._core.config import BenchConfig
from .._results import registry, stats
from .._results.analysis import connect, error_breakdown_sql, segment_columns
from .._storage.store import (
    METRICS_MARKERS,
    column_names,
    foreign_rows_note,
    harness_rows_sql,
    latest_version,
    quote,
)

MAX_PAIRS = 45  # 10 configurations; above that each configuration is compared with the best one
MAX_SEGMENT_VALUES = 12  # more distinct values: numbers go into quartile bins, text keeps the top ones
MAX_DISAGREEMENTS = 25
MIN_CELL_N = 10  # a segment cell with fewer rows is flagged as too small to read
COST_COLUMNS = ("cost_usd", "cost")
# From the metric registry (_results/metrics.yml `report`): macro metrics come from the confusion cells;
# SHOWN ones the report computes itself; any other chosen metric is read from the metrics table.
MACRO = registry.reported("macro")
SHOWN = {*registry.reported("shown"), *MACRO}
DUCKDB_MEMORY = "600MB"  # keeps the report under 1 GiB on a million rows (DuckDB spills beyond it)


@dataclass
class ConfigStats:
    """One configuration's counts and intervals."""

    config_id: str
    label: str
    params: dict[str, Any]
    n: int = 0
    n_failed: int = 0
    n_cache_hits: int = 0
    n_scored: int = 0
    n_correct: int = 0
    n_no_truth: int = 0  # rows without ground truth: excluded from accuracy, counted here
    accuracy: float | None = None
    accuracy_ci: tuple[float, float] | None = None
    accuracy_strict: float | None = None
    accuracy_strict_ci: tuple[float, float] | None = None
    error_rate: float | None = None
    error_rate_ci: tuple[float, float] | None = None
    mae: float | None = None  # regression: mean absolute error (lower is better)
    mae_ci: tuple[float, float] | None = None
    n_latency: int = 0
    latency: dict[str, float | None] = field(default_factory=dict)  # p50, p95, p99, mean
    latency_ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    latency_unreliable: list[str] = field(default_factory=list)
    cost_mean: float | None = None
    cost_mean_ci: tuple[float, float] | None = None
    cost_total: float | None = None
    pareto: bool = False
    short: str = ""  # the varying values only, for chart labels
    # Other chosen metrics: name -> (value, 95% interval or None when only the metrics table has it)
    extra: dict[str, tuple[float | None, tuple[float, float] | None]] = field(default_factory=dict)

    @property
    def quality(self) -> float | None:
        return self.accuracy if self.mae is None else self.mae


@dataclass
class PairStats:
    """Configuration A against B on the inputs both answered without an error."""

    a: str
    b: str
    n_shared: int
    difference: float | None
    ci: tuple[float, float] | None  # None (printed "–") when the two share no input
    p_bootstrap: float | None
    both: int = 0
    only_a: int = 0
    only_b: int = 0
    neither: int = 0
    p_mcnemar: float | None = None
    p_holm: float | None = None
    short: str = ""  # "a − b" with the varying values only, for chart labels


@dataclass
class ReportData:
    """Everything the two renderers need."""

    project: str
    version: str
    db_name: str
    generated: str
    kind: str
    quality_name: str  # "accuracy" or "mae"; "" when there is no ground truth
    higher_is_better: bool
    prediction_column: str
    configs: list[ConfigStats]
    segments: dict[str, list[dict[str, Any]]]
    pairs: list[PairStats]
    disagreements: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    cost_axis: str  # "cost per item (USD)" or "latency p50 (s)"
    n_disagreements: int = 0  # inputs where configurations disagree; `disagreements` holds the top ones
    notes: list[str] = field(default_factory=list)
    segment_notes: dict[str, str] = field(default_factory=dict)


def _label(params: dict[str, Any], varying: list[str], config_id: str) -> str:
    parts = [f"{k.removeprefix('params_')}={params[k]}" for k in varying]
    return ", ".join(parts) if parts else config_id[:10]


def _prediction_column(db_path: Path, table: str, version: str, columns: list[str]) -> str:
    """`scored_prediction` when `make rescore` filled it for this version, else `prediction`."""
    if "scored_prediction" not in columns:
        return "prediction"
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        filled = con.execute(
            f"SELECT 1 FROM {quote(table)} WHERE experiment_version = ? AND scored_prediction IS NOT NULL "
            f"AND {harness_rows_sql(columns)} LIMIT 1",
            (version,),
        ).fetchone()
    return "scored_prediction" if filled else "prediction"


def correct_sql(pred: str, truth: str, rule: str = "equal") -> str:
    """SQL for 'the prediction is right' under the kind's correctness rule (registry.correct_sql)."""
    return registry.correct_sql(pred, truth, rule)


def _segment_expr(con: duckdb.DuckDBPyConnection, column: str) -> tuple[str, str]:
    """A grouping expression for a segment column and a note; many numeric values become quartile bins."""
    q = quote(column)
    distinct, numeric = con.execute(
        f"SELECT COUNT(DISTINCT {q}), COUNT(TRY_CAST({q} AS DOUBLE)) = COUNT({q}) FROM src"
    ).fetchone()
    if distinct <= MAX_SEGMENT_VALUES:
        return f"coalesce(CAST({q} AS VARCHAR), '(missing)')", ""
    if numeric:
        cuts = con.execute(f"SELECT quantile_disc(TRY_CAST({q} AS DOUBLE), [0.25, 0.5, 0.75]) FROM src").fetchone()[0]
        cuts = sorted(set(float(c) for c in cuts if c is not None))
        bounds = [-math.inf, *cuts, math.inf]
        cases = " ".join(
            f"WHEN TRY_CAST({q} AS DOUBLE) <= {hi} THEN '{_bin_label(lo, hi)}'"
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
            if hi != math.inf
        )
        expr = f"CASE WHEN {q} IS NULL THEN '(missing)' {cases} ELSE '> {_fmt_num(cuts[-1])}' END" if cuts else q
        return expr, f"{distinct} distinct values: binned at the quartiles"
    top = [
        r[0]
        for r in con.execute(
            f"SELECT {q} FROM src GROUP BY 1 ORDER BY COUNT(*) DESC LIMIT {MAX_SEGMENT_VALUES - 1}"
        ).fetchall()
    ]
    listed = ", ".join("'" + str(v).replace("'", "''") + "'" for v in top if v is not None) or "''"
    expr = f"CASE WHEN {q} IS NULL THEN '(missing)' WHEN {q} IN ({listed}) THEN {q} ELSE '(other)' END"
    return expr, f"{distinct} distinct values: the {len(top)} most frequent, the rest as (other)"


def _fmt_num(x: float) -> str:
    return f"{x:g}"


def _bin_label(lo: float, hi: float) -> str:
    return f"<= {_fmt_num(hi)}" if lo == -math.inf else f"{_fmt_num(lo)} < x <= {_fmt_num(hi)}"


def _class_sql(value: str) -> str:
    """A class label as text: numbers normalised (1, '1' and 1.0 are one class), text trimmed."""
    return f"coalesce(CAST(TRY_CAST({value} AS DOUBLE) AS VARCHAR), trim({value}))"


def load_source(con: duckdb.DuckDBPyConnection, cfg: BenchConfig, columns: list[str], version: str, pred: str) -> str:
    """Copy the version's rows, the columns the report needs only, into DuckDB (one scan of SQLite).

    Returns the quality measure: 'accuracy', 'mae' (regression) or '' (no ground truth).
    """
    present = set(columns)
    col = lambda name: quote(name) if name in present else "NULL"  # noqa: E731
    cost = next((c for c in COST_COLUMNS if c in present), None)
    segments = segment_columns(cfg, columns)
    quality = cfg.quality if "ground_truth" in present else ""
    p, t = f"CAST({col(pred)} AS VARCHAR)", f"CAST({col('ground_truth')} AS VARCHAR)"
    failed = f"coalesce(CAST({col('error')} AS VARCHAR), '') <> ''"
    extra = "".join(f", {quote(s)}" for s in segments if s not in ("config_id", "input_id"))
    params = "".join(f", {quote(c)}" for c in columns if c.startswith("params_") and c not in segments)
    labels = "NULL AS pred_label, NULL AS truth_label"  # class labels only when a macro metric needs them
    if quality == "accuracy" and set(MACRO) & set(cfg.metrics):
        labels = f"CASE WHEN {failed} THEN NULL ELSE {_class_sql(p)} END AS pred_label, {_class_sql(t)} AS truth_label"
    con.execute("SET sqlite_all_varchar = true")  # SQLite columns may mix types: read text, cast here
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE src AS
        SELECT rowid AS rid, config_id, CAST(input_id AS VARCHAR) AS input_id,
               {failed} AS failed,
               coalesce(CAST({col("error_type")} AS VARCHAR), 'UNKNOWN') AS error_type,
               coalesce(CAST({col("cache")} AS VARCHAR), '') <> '' AS hit,
               TRY_CAST({col("latency")} AS DOUBLE) AS latency,
               {"TRY_CAST(" + quote(cost) + " AS DOUBLE)" if cost else "NULL::DOUBLE"} AS cost,
               {t} IS NULL AS no_truth,
               CASE WHEN {failed} OR {t} IS NULL THEN NULL ELSE {correct_sql(p, t, cfg.correct)} END AS correct,
               CASE WHEN {failed} THEN NULL ELSE abs(TRY_CAST({p} AS DOUBLE) - TRY_CAST({t} AS DOUBLE)) END
                   AS abs_error,
               {labels}
               {params}{extra}
        FROM db.{quote(cfg.predictions_table)}
        WHERE experiment_version = $version AND {harness_rows_sql(columns)}""",
        {"version": version},
    )
    con.execute("SET sqlite_all_varchar = false")
    return quality


def _params_of(con: duckdb.DuckDBPyConnection, columns: list[str]) -> dict[str, dict[str, Any]]:
    params = [c for c in columns if c.startswith("params_")]
    select = ", ".join(f"any_value({quote(c)})" for c in params)
    rows = con.execute(f"SELECT config_id{', ' + select if select else ''} FROM src GROUP BY 1 ORDER BY 1").fetchall()
    return {r[0]: dict(zip(params, r[1:], strict=True)) for r in rows}


def config_stats(con: duckdb.DuckDBPyConnection, columns: list[str], quality: str) -> list[ConfigStats]:
    """Counts per configuration in one GROUP BY, then intervals in Python from the counts."""
    params = _params_of(con, columns)
    varying = [k for k in (next(iter(params.values()), {}) or {}) if len({str(p[k]) for p in params.values()}) > 1]
    rows = con.execute(
        """SELECT config_id, COUNT(*), COUNT(*) FILTER (failed), COUNT(*) FILTER (hit),
                  COUNT(correct), COUNT(*) FILTER (correct), avg(abs_error), COUNT(abs_error),
                  avg(cost), sum(cost), COUNT(cost), COUNT(*) FILTER (no_truth)
           FROM src GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    configs = []
    for cid, n, n_failed, hits, scored, n_correct, mae, n_abs, cost_mean, cost_total, n_cost, no_truth in rows:
        c = ConfigStats(cid, _label(params[cid], varying, cid), params[cid], n, n_failed, hits, scored, n_correct)
        c.n_no_truth = no_truth
        c.short = ", ".join(str(params[cid][k]) for k in varying) or cid[:10]
        c.error_rate, c.error_rate_ci = n_failed / n, stats.wilson(n_failed, n)
        if quality == "accuracy" and scored:
            c.accuracy, c.accuracy_ci = n_correct / scored, stats.wilson(n_correct, scored)
        with_truth = n - no_truth  # strict accuracy: an error counts as wrong, so an all-error run scores 0
        if quality == "accuracy" and with_truth:
            c.accuracy_strict, c.accuracy_strict_ci = n_correct / with_truth, stats.wilson(n_correct, with_truth)
        if quality == "mae" and n_abs:
            errors = con.execute("SELECT abs_error FROM src WHERE config_id = ? AND abs_error IS NOT NULL", [cid])
            c.mae = float(mae)
            c.mae_ci, _ = stats.bootstrap_mean_ci(errors.fetchnumpy()["abs_error"].astype(float))
        if n_cost:
            costs = con.execute("SELECT cost FROM src WHERE config_id = ? AND cost IS NOT NULL", [cid])
            c.cost_mean, c.cost_total = float(cost_mean), float(cost_total)
            c.cost_mean_ci, _ = stats.bootstrap_mean_ci(costs.fetchnumpy()["cost"].astype(float))
        _latency(con, c)
        configs.append(c)
    return configs


def macro_stats(con: duckdb.DuckDBPyConnection, configs: list[ConfigStats], chosen: tuple[str, ...]) -> None:
    """Macro F1/precision/recall with bootstrap intervals, from each configuration's confusion cells.

    Resampling rows is a multinomial draw over the (truth, prediction) cells, so the bootstrap costs
    nothing per row: DuckDB counts the cells, numpy redraws them (stats.multinomial_bootstrap).
    """
    names = [m for m in MACRO if m in chosen]
    if not names:
        return
    rows = con.execute(
        """SELECT config_id, truth_label, coalesce(pred_label, ''), correct, COUNT(*) FROM src
           WHERE NOT failed AND truth_label IS NOT NULL GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    cells: dict[str, list[tuple[str, str, bool, int]]] = {}
    for cid, truth, pred, correct, n in rows:
        cells.setdefault(cid, []).append((truth, pred, bool(correct), n))
    for c in configs:
        if c.config_id not in cells:
            continue
        counts, scores = _confusion(cells[c.config_id])
        point = scores(counts[None, :])
        for name in names:
            interval = stats.multinomial_bootstrap(counts, lambda draws, name=name, f=scores: f(draws)[name])
            value = float(point[name][0])
            c.extra[name] = (None if math.isnan(value) else value, interval)


def _confusion(found: list[tuple[str, str, bool, int]]) -> tuple[np.ndarray, Any]:
    """Cell counts and a function of resampled counts -> {macro metric: values} (stats.macro_scores)."""
    labels = sorted({t for t, _, _, _ in found} | {p for _, p, _, _ in found if p})
    index = {label: i for i, label in enumerate(labels)}
    truth = np.array([index[t] for t, _, _, _ in found])
    pred = np.array([index.get(p, -1) for _, p, _, _ in found])
    correct = np.array([ok for _, _, ok, _ in found])
    counts = np.array([n for _, _, _, n in found], dtype=float)
    return counts, lambda draws: stats.macro_scores(draws, truth, pred, correct, len(labels))


def table_metrics(cfg: BenchConfig, db_path: Path, version: str, configs: list[ConfigStats], quality: str) -> None:
    """The other chosen metrics (rmse, r2, recall@k, tokens...) as the metrics table recorded them."""
    shown = SHOWN - ({"mae"} if quality != "mae" else set())  # mae is computed only as a kind's quality
    wanted = [m for m in cfg.metrics if m not in shown]
    present = set(column_names(db_path, cfg.metrics_table))
    wanted = [m for m in wanted if m in present]
    if not wanted or not {"config_id", "experiment_version"} <= present:
        return
    original = "AND scorer_version IS NULL" if "scorer_version" in present else ""
    select = ", ".join(quote(m) for m in wanted)
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as sq:
        rows = sq.execute(
            f"SELECT config_id, {select} FROM {quote(cfg.metrics_table)} WHERE experiment_version = ? {original} "
            f"AND {harness_rows_sql(present, METRICS_MARKERS)} ORDER BY rowid",
            (version,),
        ).fetchall()
    latest = {row[0]: row[1:] for row in rows}
    for c in configs:
        for name, value in zip(wanted, latest.get(c.config_id, [None] * len(wanted)), strict=True):
            c.extra[name] = (value if isinstance(value, (int, float)) else None, None)


def _latency(con: duckdb.DuckDBPyConnection, c: ConfigStats) -> None:
    """Latency of successful rows: percentiles with intervals, mean.

    A cache hit carries the latency of the computation it reuses, so it counts like the metrics table
    and the terminal count it (one definition everywhere; a fully cached re-run still has latency).
    """
    values = (
        con.execute(
            "SELECT latency FROM src WHERE config_id = ? AND NOT failed AND latency IS NOT NULL",
            [c.config_id],
        )
        .fetchnumpy()["latency"]
        .astype(float)
    )
    c.n_latency = int(values.size)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        c.latency[name] = stats.percentile(values, q * 100)
        c.latency_ci[name] = stats.quantile_ci(values, q)
        if values.size and not stats.quantile_ci_reliable(int(values.size), q):
            c.latency_unreliable.append(name)
    c.latency["mean"] = float(values.mean()) if values.size else None
    c.latency_ci["mean"], _ = stats.bootstrap_mean_ci(values)


def segment_stats(
    con: duckdb.DuckDBPyConnection, cfg: BenchConfig, columns: list[str], configs: list[ConfigStats], quality: str
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Per segmentation: per (segment value, configuration) n, quality and its interval."""
    labels = {c.config_id: c.label for c in configs}
    result, notes = {}, {}
    for column in segment_columns(cfg, columns):
        expr, note = _segment_expr(con, column)
        rows = con.execute(
            f"""SELECT {expr} AS segment, config_id, COUNT(*) AS n, COUNT(correct), COUNT(*) FILTER (correct),
                       avg(abs_error), COUNT(abs_error), COUNT(*) FILTER (failed)
                FROM src GROUP BY ALL ORDER BY 1, 2"""
        ).fetchall()
        cells = []
        for segment, cid, n, scored, n_correct, mae, n_abs, n_failed in rows:
            cell = {
                "segment": str(segment),
                "config": labels[cid],
                "n": n,
                "n_failed": n_failed,
                "small": n < MIN_CELL_N,
            }
            if quality == "accuracy":
                cell["value"] = n_correct / scored if scored else None
                cell["ci"] = stats.wilson(n_correct, scored)
            elif quality == "mae":
                cell["value"] = float(mae) if n_abs else None
                cell["ci"] = _cell_mae_ci(con, expr, segment, cid) if n_abs else None
            cells.append(cell)
        name = column.removeprefix("params_")
        result[name] = cells
        if note:
            notes[name] = note
    return result, notes


def _cell_mae_ci(con: duckdb.DuckDBPyConnection, expr: str, segment: Any, cid: str) -> tuple[float, float] | None:
    """Bootstrap interval of one segment cell's MAE (its large-n limit above stats.BOOTSTRAP_MAX_N)."""
    values = con.execute(
        f"SELECT abs_error FROM src WHERE config_id = $cid AND ({expr}) = $segment AND abs_error IS NOT NULL",
        {"cid": cid, "segment": segment},
    ).fetchnumpy()["abs_error"]
    interval, _ = stats.bootstrap_mean_ci(values.astype(float))
    return interval


def _pairs_to_compare(configs: list[ConfigStats], quality: str) -> list[tuple[ConfigStats, ConfigStats]]:
    pairs = list(itertools.combinations(configs, 2))
    if len(pairs) <= MAX_PAIRS:
        return pairs
    ranked = sorted(configs, key=lambda c: _sort_key(c, quality))
    return [(ranked[0], other) for other in ranked[1:]]


def _sort_key(c: ConfigStats, quality: str) -> float:
    value = c.quality
    if value is None:
        return math.inf
    return value if quality == "mae" else -value


def pair_stats(con: duckdb.DuckDBPyConnection, configs: list[ConfigStats], quality: str) -> list[PairStats]:
    """Paired comparisons on shared inputs (both without an error), Holm-adjusted across the pairs."""
    if not quality or len(configs) < 2:
        return []
    pairs = []
    for a, b in _pairs_to_compare(configs, quality):
        join = (
            "FROM src x JOIN src y ON x.input_id = y.input_id "
            "WHERE x.config_id = $a AND y.config_id = $b AND NOT x.failed AND NOT y.failed"
        )
        ids = {"a": a.config_id, "b": b.config_id}
        if quality == "accuracy":
            both, only_a, only_b, neither = con.execute(
                "SELECT COUNT(*) FILTER (x.correct AND y.correct), COUNT(*) FILTER (x.correct AND NOT y.correct), "
                "COUNT(*) FILTER (NOT x.correct AND y.correct), "
                f"COUNT(*) FILTER (NOT x.correct AND NOT y.correct) {join}",
                ids,
            ).fetchone()
            n_shared = both + only_a + only_b + neither
            diff, ci, p = stats.paired_binary_bootstrap(both, only_a, only_b, neither)
            pair = PairStats(a.label, b.label, n_shared, diff, ci, p, both, only_a, only_b, neither)
            pair.p_mcnemar = stats.mcnemar_exact(only_a, only_b)
            if not n_shared:  # nothing to compare: no difference, interval or p ("–"), not "0 [0, 0], p 1"
                pair.difference, pair.ci, pair.p_bootstrap, pair.p_mcnemar = None, None, None, None
        else:
            diffs = (
                con.execute(
                    f"SELECT x.abs_error - y.abs_error AS d {join} "
                    "AND x.abs_error IS NOT NULL AND y.abs_error IS NOT NULL",
                    ids,
                )
                .fetchnumpy()["d"]
                .astype(float)
            )
            diff, ci, p = stats.paired_mean_bootstrap(diffs)  # the interval's own bootstrap p: they agree
            pair = PairStats(a.label, b.label, int(diffs.size), diff if diffs.size else None, ci, p)
        pair.short = f"{a.short} − {b.short}"
        pairs.append(pair)
    tested = [p for p in pairs if p.n_shared]
    pvalues = [p.p_mcnemar if p.p_mcnemar is not None else p.p_bootstrap for p in tested]
    for pair, adjusted in zip(tested, stats.holm(pvalues), strict=True):
        pair.p_holm = adjusted
    return pairs


def disagreements(
    con: duckdb.DuckDBPyConnection, cfg: BenchConfig, configs: list[ConfigStats], pred: str, quality: str
) -> tuple[list[dict[str, Any]], int]:
    """Inputs where the configurations' correctness differs, the most informative first, with raw responses.

    An answer is as informative as it is unexpected from its configuration: |correct − accuracy|.
    A baseline that is always wrong adds nothing by being wrong again; the best configuration
    failing where weaker ones succeed ranks high. Ties go by input_id.
    """
    if quality != "accuracy" or len(configs) < 2:
        return [], 0
    ranked = """WITH acc AS (SELECT config_id, avg(CAST(correct AS DOUBLE)) AS accuracy FROM src
                         WHERE correct IS NOT NULL GROUP BY 1),
                  split AS (SELECT input_id, sum(abs(CAST(correct AS DOUBLE) - accuracy)) AS surprise
                            FROM src JOIN acc USING (config_id) WHERE correct IS NOT NULL GROUP BY input_id
                            HAVING bool_or(correct) AND NOT bool_and(correct))"""
    total = con.execute(f"{ranked} SELECT COUNT(*) FROM split").fetchone()[0]
    ids = [
        r[0]
        for r in con.execute(
            f"{ranked} SELECT input_id FROM split ORDER BY surprise DESC, input_id LIMIT {MAX_DISAGREEMENTS}"
        ).fetchall()
    ]
    if not ids:
        return [], 0
    labels = {c.config_id: c.label for c in configs}
    con.execute("SET sqlite_all_varchar = true")
    rows = con.execute(
        f"""SELECT s.input_id, s.config_id, s.correct, CAST(p.{quote(pred)} AS VARCHAR),
                   CAST(p.ground_truth AS VARCHAR), CAST(p.raw_response AS VARCHAR)
            FROM src s JOIN db.{quote(cfg.predictions_table)} p ON p.rowid = s.rid
            WHERE s.input_id IN (SELECT unnest($ids)) ORDER BY s.input_id, s.config_id""",
        {"ids": ids},
    ).fetchall()
    con.execute("SET sqlite_all_varchar = false")
    table: dict[str, dict[str, Any]] = {}
    for input_id, cid, correct, prediction, truth, raw in rows:
        entry = table.setdefault(input_id, {"input_id": input_id, "ground_truth": truth, "answers": []})
        entry["answers"].append(
            {"config": labels[cid], "correct": bool(correct), "prediction": prediction, "raw_response": raw}
        )
    return [table[i] for i in ids if i in table], int(total)


def error_breakdown(con: duckdb.DuckDBPyConnection, configs: list[ConfigStats]) -> list[dict[str, Any]]:
    labels = {c.config_id: c.label for c in configs}
    rows = con.execute(error_breakdown_sql("src", ["config_id"], "failed")).fetchall()
    return [{"config": labels[cid], "error_type": et, "count": n} for et, cid, n in rows]


def mark_pareto(configs: list[ConfigStats], quality: str) -> str:
    """Flag the non-dominated configurations; the cost axis is cost per item, else latency p50."""
    use_cost = any(c.cost_mean is not None for c in configs)
    costs = [c.cost_mean if use_cost else c.latency.get("p50") for c in configs]
    values = [None if c.quality is None else (-c.quality if quality == "mae" else c.quality) for c in configs]
    for c, on_front in zip(configs, stats.pareto_front(values, costs), strict=True):
        c.pareto = on_front
    return "cost per item (USD)" if use_cost else "latency p50 (s)"


def build(cfg: BenchConfig, db_path: Path, version: str | None = None) -> ReportData:
    """Query the database and compute every table and interval of the report."""
    columns = column_names(db_path, cfg.predictions_table)
    if not columns:
        raise FileNotFoundError(f"no {cfg.predictions_table} table in {db_path}: run `make experiment` first")
    version = version or latest_version(db_path, cfg.predictions_table)
    if not version:
        raise ValueError(f"{cfg.predictions_table} has no experiment_version: nothing to report")
    pred = _prediction_column(db_path, cfg.predictions_table, version, columns)
    con = connect(db_path)
    try:
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        con.execute("SET preserve_insertion_order = false")
        quality = load_source(con, cfg, columns, version, pred)
        if not con.execute("SELECT COUNT(*) FROM src").fetchone()[0]:
            raise ValueError(f"no rows of version {version!r} in {cfg.predictions_table}")
        configs = config_stats(con, columns, quality)
        macro_stats(con, configs, cfg.metrics)
        table_metrics(cfg, db_path, version, configs, quality)
        cost_axis = mark_pareto(configs, quality)
        segments, segment_notes = segment_stats(con, cfg, columns, configs, quality)
        shown, n_disagreements = disagreements(con, cfg, configs, pred, quality)
        data = ReportData(
            project=cfg.name,
            version=version,
            db_name=Path(db_path).name,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            kind=cfg.kind,
            quality_name=quality,
            higher_is_better=registry.higher_is_better(quality),
            prediction_column=pred,
            configs=configs,
            segments=segments,
            pairs=pair_stats(con, configs, quality),
            disagreements=shown,
            n_disagreements=n_disagreements,
            errors=error_breakdown(con, configs),
            cost_axis=cost_axis,
            segment_notes=segment_notes,
        )
    finally:
        con.close()
    data.notes = _notes(data)
    foreign = foreign_rows_note(db_path, cfg.predictions_table)
    if foreign:
        data.notes.append(foreign + ".")
    return data


def _notes(data: ReportData) -> list[str]:
    notes = [
        f"Predictions compared with ground truth: column `{data.prediction_column}`"
        + (" (re-scored by `make rescore`)." if data.prediction_column == "scored_prediction" else "."),
        "Latency statistics exclude failed rows; a cache hit carries the latency of the computation it reuses. "
        "Percentiles: numpy's 'linear' interpolation (type 7).",
    ]
    if data.quality_name == "accuracy":
        notes.append(
            "accuracy is over successful rows (the guide's convention); strict accuracy counts errors as wrong."
        )
    no_truth = sum(c.n_no_truth for c in data.configs)
    if no_truth and data.quality_name:
        notes.append(
            f"{no_truth} row(s) have no ground truth (NULL): excluded from every quality figure and counted in "
            "the column 'no truth'."
        )
    if data.pairs and all(p.ci is None or p.ci[0] <= 0 <= p.ci[1] for p in data.pairs):
        notes.append("Every paired interval includes 0: the ranking of the configurations is not decisive.")
    unreliable = sorted({q for c in data.configs for q in c.latency_unreliable})
    if unreliable:
        notes.append(
            f"Latency {', '.join(unreliable)} marked * rest on fewer than 10 values above the quantile: "
            "the interval is wide, and '≥ max' where the sample has no finite upper bound for it."
        )
    return notes
