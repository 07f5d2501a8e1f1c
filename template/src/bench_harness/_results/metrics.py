"""Metrics per configuration: one row per configuration per run in the metrics table.

Template-owned. Metrics are computed from the recorded predictions (the latest row per input of
this run), never from values held in memory, so a resumed or fully cached run gives the same
metrics as an uninterrupted one. The prediction compared with the ground truth is
`scoring.parse_prediction(row)` (user-owned), so a change of parsing is a re-score, not a re-run.

Every metric is declared once in metrics.yml (the registry: direction, interval, report, kinds) and
implemented here by a function bound to its name with @implements; "correct" is the kind's rule
(benchmark.toml [analysis] correct, registry.CORRECTNESS), the same rule the report runs in SQL.

Error policy (explicit, as the peers are not): `accuracy` is over successful rows, as the guide
computes it; `accuracy_strict` counts errors as wrong, over every row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core.config import BenchConfig
from .._storage import keys
from .._storage.store import Store, timestamp
from . import aggregate, registry
from .cells import as_list as _as_list
from .cells import number as _number
from .cells import parse_prediction_fn
from .registry import bind, implements


def same(a: Any, b: Any) -> bool:
    """Equality that tolerates 1 vs '1' vs 1.0 (labels read back from SQLite or JSON): the rule `equal`."""
    return registry.equal(a, b)


@dataclass
class MetricInput:
    """The rows of one configuration, split the way every metric needs them."""

    rows: list[dict[str, Any]]
    predictions: list[Any]
    truths: list[Any]
    run_seconds: float | None = None
    correct: Callable[[Any, Any], bool] = same  # the kind's correctness rule

    def is_correct(self, prediction: Any, truth: Any) -> bool:
        return self.correct(prediction, truth)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r.get("error")]

    def numbers(self, column: str, computed_only: bool = False) -> np.ndarray:
        values = [
            r.get(column)
            for r in self.ok
            if isinstance(r.get(column), (int, float)) and not (computed_only and r.get("cache"))
        ]
        return np.asarray(values, dtype=float)


def _ok_pairs(m: MetricInput) -> tuple[list[Any], list[Any]]:
    pairs = [(p, t) for r, p, t in zip(m.rows, m.predictions, m.truths, strict=True) if not r.get("error")]
    return [p for p, _ in pairs], [t for _, t in pairs]


@implements("accuracy")
def accuracy(m: MetricInput) -> float | None:
    preds, truths = _ok_pairs(m)
    return sum(m.is_correct(p, t) for p, t in zip(preds, truths, strict=True)) / len(preds) if preds else None


@implements("accuracy_strict")
def accuracy_strict(m: MetricInput) -> float | None:
    if not m.rows:
        return None
    pairs = zip(m.rows, m.predictions, m.truths, strict=True)
    return sum(m.is_correct(p, t) for r, p, t in pairs if not r.get("error")) / len(m.rows)


def per_class(m: MetricInput) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per ground-truth class (successful rows)."""
    preds, truths = _ok_pairs(m)
    labels = sorted({str(t) for t in truths} | {str(p) for p in preds if p is not None})
    table = {}
    for label in labels:
        pairs = list(zip(preds, truths, strict=True))
        tp = sum(str(p) == label and m.is_correct(p, t) for p, t in pairs)
        fp = sum(str(p) == label and not m.is_correct(p, t) for p, t in pairs)
        fn = sum(str(t) == label and not m.is_correct(p, t) for p, t in pairs)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return table


def _macro(m: MetricInput, key: str) -> float | None:
    classes = {k: v for k, v in per_class(m).items() if v["support"] > 0}
    return float(np.mean([v[key] for v in classes.values()])) if classes else None


def _percentile(q: float) -> Callable[[MetricInput], float | None]:
    def compute(m: MetricInput) -> float | None:
        values = m.numbers("latency")
        return float(np.percentile(values, q)) if values.size else None

    compute.__doc__ = f"p{q:g} of the latency measured inside predict() (seconds)"
    return compute


@implements("latency_mean")
def latency_mean(m: MetricInput) -> float | None:
    values = m.numbers("latency")
    return float(values.mean()) if values.size else None


@implements("error_rate")
def error_rate(m: MetricInput) -> float | None:
    return sum(bool(r.get("error")) for r in m.rows) / len(m.rows) if m.rows else None


@implements("throughput")
def throughput(m: MetricInput) -> float | None:
    """Rows per second of predict() time (computed rows only; cache hits cost nothing)."""
    times = m.numbers("function_time", computed_only=True)
    return float(times.size / times.sum()) if times.size and times.sum() > 0 else None


# -- kind-specific metrics (the `kind` answer decides which ones may be chosen: copier.yml) ----------


def _regression_pairs(m: MetricInput) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) values of the successful rows where both are numbers."""
    pairs = [
        (p, t)
        for r, p, t in zip(m.rows, m.predictions, m.truths, strict=True)
        if not r.get("error") and _number(p) is not None and _number(t) is not None
    ]
    return np.asarray([_number(p) for p, _ in pairs]), np.asarray([_number(t) for _, t in pairs])


@implements("mae")
def mae(m: MetricInput) -> float | None:
    """Mean absolute error over successful rows (the target's unit)."""
    predicted, true = _regression_pairs(m)
    return float(np.abs(predicted - true).mean()) if predicted.size else None


@implements("rmse")
def rmse(m: MetricInput) -> float | None:
    """Root mean squared error over successful rows: punishes large misses more than MAE."""
    predicted, true = _regression_pairs(m)
    return float(np.sqrt(((predicted - true) ** 2).mean())) if predicted.size else None


@implements("r2")
def r2(m: MetricInput) -> float | None:
    """Coefficient of determination: 0 is the mean of these targets, 1 is perfect, < 0 is worse."""
    predicted, true = _regression_pairs(m)
    if predicted.size < 2:
        return None
    total = float(((true - true.mean()) ** 2).sum())
    return 1.0 - float(((true - predicted) ** 2).sum()) / total if total > 0 else None


@implements("prediction_std")
def prediction_std(m: MetricInput) -> float | None:
    """Mean of the per-row `prediction_std` (a model's own uncertainty; None when it has none)."""
    values = m.numbers("prediction_std")
    return float(values.mean()) if values.size else None


def _retrieval(m: MetricInput) -> list[tuple[list[str], set[str]]]:
    """(ranked document ids, relevant ids) of each successful row with a ground truth."""
    pairs = []
    for r, ranking, truth in zip(m.rows, m.predictions, m.truths, strict=True):
        relevant = {str(t) for t in _as_list(truth)}
        if not r.get("error") and relevant:
            pairs.append(([str(d) for d in _as_list(ranking)], relevant))
    return pairs


def _recall_at(k: int) -> Callable[[MetricInput], float | None]:
    def compute(m: MetricInput) -> float | None:
        pairs = _retrieval(m)
        if not pairs:
            return None
        return float(np.mean([len(set(ranked[:k]) & relevant) / len(relevant) for ranked, relevant in pairs]))

    compute.__doc__ = f"share of the relevant documents found in the top {k}, averaged over queries"
    return compute


@implements("mrr")
def mrr(m: MetricInput) -> float | None:
    """Mean reciprocal rank of the first relevant document (0 when it was not retrieved)."""
    pairs = _retrieval(m)
    if not pairs:
        return None
    ranks = [next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in relevant), 0.0) for ranked, relevant in pairs]
    return float(np.mean(ranks))


def _column_sum(m: MetricInput, column: str, computed_only: bool = False) -> float | None:
    """Sum of a numeric column over every row (a failed call can still have cost tokens)."""
    values = [_number(r.get(column)) for r in m.rows if not (computed_only and r.get("cache"))]
    numbers = [v for v in values if v is not None]
    return float(sum(numbers)) if numbers else None


@implements("total_cost")
def total_cost(m: MetricInput) -> float | None:
    """USD of these results (cost_usd per row, priced from the run's pricing snapshot), cache hits included."""
    return _column_sum(m, "cost_usd")


@implements("cost_spent")
def cost_spent(m: MetricInput) -> float | None:
    """USD spent by this run: computed rows only (a cache hit costs nothing)."""
    if not any(_number(r.get("cost_usd")) is not None for r in m.rows):
        return None
    return _column_sum(m, "cost_usd", computed_only=True) or 0.0


@implements("cost_per_item")
def cost_per_item(m: MetricInput) -> float | None:
    costs = [_number(r.get("cost_usd")) for r in m.rows if _number(r.get("cost_usd")) is not None]
    return float(sum(costs) / len(costs)) if costs else None


@implements("cost_per_correct")
def cost_per_correct(m: MetricInput) -> float | None:
    """Total cost divided by the correct answers (None when nothing was correct)."""
    cost = total_cost(m)
    pairs = zip(m.rows, m.predictions, m.truths, strict=True)
    correct = sum(m.is_correct(p, t) for r, p, t in pairs if not r.get("error"))
    return cost / correct if cost is not None and correct else None


def _request_latencies(m: MetricInput) -> np.ndarray:
    """Every request's latency of the load bursts (the `request_latencies` JSON lists), pooled."""
    values = [_number(v) for r in m.ok for v in _as_list(r.get("request_latencies"))]
    return np.asarray([v for v in values if v is not None], dtype=float)


def _request_percentile(q: float) -> Callable[[MetricInput], float | None]:
    def compute(m: MetricInput) -> float | None:
        values = _request_latencies(m)
        return float(np.percentile(values, q)) if values.size else None

    compute.__doc__ = f"p{q:g} of every request's latency under load (seconds, numpy 'linear')"
    return compute


@implements("requests_per_second")
def requests_per_second(m: MetricInput) -> float | None:
    """Successful requests divided by the wall time of the bursts that sent them."""
    done, seconds = m.numbers("requests_ok"), m.numbers("burst_seconds")
    return float(done.sum() / seconds.sum()) if done.size and seconds.size and seconds.sum() > 0 else None


@implements("request_error_rate")
def request_error_rate(m: MetricInput) -> float | None:
    """Failed requests over sent requests, across every burst."""
    failed, total = m.numbers("requests_failed"), m.numbers("requests_total")
    return float(failed.sum() / total.sum()) if total.size and total.sum() > 0 else None


def _column_mean(column: str, doc: str) -> Callable[[MetricInput], float | None]:
    def compute(m: MetricInput) -> float | None:
        values = m.numbers(column)
        return float(values.mean()) if values.size else None

    compute.__doc__ = doc
    return compute


for _q in (50, 95, 99):
    bind(f"latency_p{_q}", _percentile(_q))
    bind(f"request_latency_p{_q}", _request_percentile(_q))
for _k in (1, 5, 10):
    bind(f"recall_at_{_k}", _recall_at(_k))
for _column in ("prompt_tokens", "completion_tokens", "total_tokens"):
    bind(_column, lambda m, column=_column: _column_sum(m, column))
bind("cpu_percent", _column_mean("cpu", "mean CPU % of the benchmark's process tree (run.log_system_params)"))
bind("memory_percent", _column_mean("p_memory_percent", "mean memory % of the benchmark's process tree"))
bind("f1_macro", lambda m: _macro(m, "f1"))
bind("precision_macro", lambda m: _macro(m, "precision"))
bind("recall_macro", lambda m: _macro(m, "recall"))

# Every declared metric's function, by name (fails at import when metrics.yml and this module disagree).
METRICS: dict[str, Callable[[MetricInput], float | None]] = registry.implementations()


def compute(
    rows: Sequence[dict[str, Any]],
    chosen: Sequence[str],
    parse: Callable[[dict], Any] | None = None,
    correct: str = "equal",
) -> dict[str, Any]:
    """Counts plus every chosen metric (unknown names are reported, not silently dropped).

    `correct` names the kind's correctness rule (benchmark.toml [analysis] correct).
    """
    parse = parse or parse_prediction_fn()
    rows = list(rows)
    m = MetricInput(
        rows=rows,
        predictions=[parse(r) if not r.get("error") else None for r in rows],
        truths=[r.get("ground_truth") for r in rows],
        correct=registry.is_correct(correct),
    )
    values: dict[str, Any] = {
        "n": len(rows),
        "n_successful": sum(not r.get("error") for r in rows),
        "n_failed": sum(bool(r.get("error")) for r in rows),
        "n_cache_hits": sum(bool(r.get("cache")) for r in rows),
    }
    names = list(dict.fromkeys(n for name in chosen for n in (name, *registry.companions(name))))
    for name in names:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}: known metrics are {', '.join(sorted(METRICS))}")
        value = METRICS[name](m)
        values[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    if "f1_macro" in chosen:
        values["per_class"] = json.dumps(per_class(m), sort_keys=True)
    return values


def log_metrics(cfg: BenchConfig, summary: Any, db_path: Any = None) -> list[dict[str, Any]]:
    """Compute each configuration's metrics from its recorded rows and write one row each.

    The rows stay in the database: aggregate.compute reads counts and sums in SQL and streams the
    rest in chunks (compute() above, over a list of rows, is the reference it is tested against).
    A metrics row already written for the same run and configuration is replaced, so a resumed
    run still has exactly one metrics row per configuration.
    """
    version, phase = summary.experiment_version, summary.phase
    parse = parse_prediction_fn()
    written = []
    with Store(db_path or cfg.db_path) as store:
        for config in summary.configs:
            cid = keys.config_id(config)
            where = {"experiment_version": version, "phase": phase, "config_id": cid}
            row = {"track_id": summary.track_ids[cid], "timestamp": timestamp()}
            row.update({f"params_{k}": v for k, v in keys.params_dict(config).items()})
            row["config_id"] = cid
            row.update(aggregate.compute(store.conn, cfg.predictions_table, where, cfg.metrics, parse, cfg.correct))
            row.update(summary.metadata)
            store.delete_where(cfg.metrics_table, where)
            written.append(row)
        if written:
            # One insert: a new column takes its type from the first non-null value of ANY
            # configuration (prediction_std is None for ridge, a number for the forest).
            store.insert(cfg.metrics_table, written)
    return written
