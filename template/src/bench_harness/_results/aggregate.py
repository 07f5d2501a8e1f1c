"""Metrics of one configuration computed in SQLite and streamed accumulators: the rows are never all in Python.

Template-owned. `metrics.compute()` takes a list of row dicts: at 1,000,000 rows that list alone is
gigabytes. Here the same numbers come from the database itself, in three forms:

* counts (rows, failed rows, cache hits) are SQL aggregates;
* a metric of one numeric column (latency percentiles and mean, throughput, costs, tokens, the
  load columns) fetches that column alone, filtered in SQL, into a numpy array (8 bytes a row) and
  applies the very numpy expression metrics.py applies, so the value is identical;
* a metric of (prediction, ground truth) pairs (accuracy, the per-class table, regression errors,
  recall@k, MRR) feeds `Pairs` chunk by chunk. With the default parsing (the stored `prediction`)
  and only label metrics chosen, SQL groups the rows by their distinct (prediction, truth) cells and
  the kind's rule (registry.CORRECTNESS) runs once per distinct pair; otherwise the rows are read
  in chunks (`fetchmany`) and go through the user's `scoring.parse_prediction` one by one, as a
  change of parsing is a re-score.

Every metric declared in metrics.yml has a form here (`STREAMED`, checked at import); metrics.py's
Python functions stay the reference they are tested against (tests/test_metrics_sql.py).
"""

from __future__ import annotations

import json
import math
import sqlite3
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from itertools import chain
from typing import Any

import numpy as np

from .._storage.store import column_names, equals_clause, harness_rows_sql, quote
from . import registry
from .cells import as_list, number, parse_prediction_fn, stored_prediction

CHUNK = 10_000  # rows per fetchmany: bounded memory, few round trips
MEMO_LIMIT = 100_000  # distinct (prediction, truth) pairs whose correctness is remembered
PAIRS = "temp._bench_pairs"  # (prediction, truth) cell pairs and their counts
SOURCE = "temp._bench_src"  # the latest row per input of the configuration: the columns the metrics read
FINITE = "BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"  # excludes ±Inf (NaN is stored as NULL)


def truthy_sql(expr: str) -> str:
    """SQL for Python's bool() of a fetched cell: '' , 0, 0.0, an empty blob and NULL are false."""
    return (
        f"coalesce(CASE typeof({expr}) WHEN 'text' THEN {expr} <> '' WHEN 'blob' THEN length({expr}) > 0 "
        f"ELSE {expr} <> 0 END, 0)"
    )


class Source:
    """The latest harness row per input of one configuration of a run, copied once into a narrow temporary table.

    One scan of the predictions table copies the columns the chosen metrics read (`needed`), with
    `failed` and `hit` already evaluated, into `temp._bench_src` (in memory: the Store sets
    temp_store=MEMORY). Every later query reads that table, not the wide rows again. Its columns have
    no declared type, so each cell keeps the type it was stored with (1, 1.0 and '1' stay apart).
    """

    def __init__(self, con: sqlite3.Connection, table: str, where: dict[str, Any], needed: Iterable[str] = ()):
        self.con, self.table = con, table
        self.columns = set(column_names(con, table))
        if not {"config_id", "input_id"} <= self.columns:
            self.columns = set()  # no such table, or not one the harness wrote: no rows
        self.kept = {name: f"c{i}" for i, name in enumerate(dict.fromkeys(n for n in needed if n in self.columns))}
        con.execute(f"DROP TABLE IF EXISTS {SOURCE}")
        cells = "".join(f", {alias}" for alias in self.kept.values())
        con.execute(f"CREATE TEMP TABLE {SOURCE.split('.')[1]} (rid INTEGER PRIMARY KEY, failed, hit{cells})")
        if self.columns:
            duplicated, sequential = self._shape(where)
            copied = "".join(f", {quote(name)}" for name in self.kept)
            failed, hit = truthy_sql(self._raw("error")), truthy_sql(self._raw("cache"))
            con.execute(
                f"INSERT INTO {SOURCE} SELECT t.rowid, {failed}, {hit}{copied} FROM {quote(table)} AS t "
                f"{'NOT INDEXED' if sequential else ''} WHERE {self._latest(where, duplicated)}",
                tuple(where.values()) * (2 if duplicated else 1),
            )
        self.failed, self.hit = "failed", "hit"

    def _raw(self, name: str) -> str:
        return quote(name) if name in self.columns else "NULL"

    def _shape(self, where: dict[str, Any]) -> tuple[bool, bool]:
        """(an input has two rows, read the table in rowid order rather than through the version index).

        One walk of the index on (experiment_version, config_id, input_id), no table row read: usually
        no input has two rows (only a resumed or retried run writes a second one), and the rows are
        then read straight, without first collecting the latest rowid of each input. When this
        version is a large share of the table, a sequential scan beats the index's random reads.
        """
        if not {"experiment_version", "config_id"} <= set(where):
            return True, False
        inputs, most = self.con.execute(
            f"SELECT COUNT(*), MAX(n) FROM (SELECT COUNT(*) AS n FROM {quote(self.table)} "
            "WHERE experiment_version = ? AND config_id = ? GROUP BY input_id)",
            (where["experiment_version"], where["config_id"]),
        ).fetchone()
        last = self.con.execute(f"SELECT MAX(rowid) FROM {quote(self.table)}").fetchone()[0] or 0
        return (most or 0) > 1, inputs * 4 >= last

    def _latest(self, where: dict[str, Any], duplicated: bool) -> str:
        """WHERE clause of the latest harness row per input matching `where` (names resolve to the nearest table)."""
        clause = equals_clause(where)
        own = f"{clause} AND {harness_rows_sql(self.columns)}"
        if not duplicated:
            return own
        latest = f"SELECT MAX(rowid) FROM {quote(self.table)} AS u WHERE {own} GROUP BY config_id, input_id"
        return f"{own} AND t.rowid IN ({latest})"

    def close(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {SOURCE}")

    def col(self, name: str) -> str:
        """The copied column, or NULL when the table has none (a row dict would lack the key)."""
        if name not in self.kept and name in self.columns:
            raise KeyError(f"aggregate: column {name!r} read but not declared by the metric's form (FORMS)")
        return self.kept.get(name, "NULL")

    def query(self, select: str, where: str = "1=1", tail: str = "ORDER BY rid") -> sqlite3.Cursor:
        """SELECT over the copied rows, in rowid order (the order metrics.compute saw them in)."""
        return self.con.execute(f"SELECT {select} FROM {SOURCE} WHERE {where} {tail}")

    def full_rows(self) -> sqlite3.Cursor:
        """Every column of the successful rows, in rowid order: what the user's parse_prediction is given."""
        if not self.columns:
            return self.con.execute("SELECT NULL WHERE 0")
        return self.con.execute(
            f"SELECT t.* FROM {SOURCE} AS s CROSS JOIN {quote(self.table)} AS t ON t.rowid = s.rid "
            "WHERE NOT s.failed ORDER BY s.rid"
        )


def _distinct_pairs(predictions: Sequence[Any], truths: Sequence[Any]) -> Counter[tuple] | None:
    """{(type, prediction, type, truth): rows}, or None when a cell is unhashable or a float zero.

    The types keep 1, 1.0 and True apart; -0.0 and 0.0 are equal keys (their labels are not), so a
    chunk holding a float zero is counted row by row instead.
    """
    try:
        counted = Counter(zip(map(type, predictions), predictions, map(type, truths), truths, strict=True))
    except TypeError:
        return None
    zero = any((issubclass(tp, float) and p == 0) or (issubclass(tt, float) and t == 0) for tp, p, tt, t in counted)
    return None if zero else counted


def _negative_zero(value: float) -> bool:
    return math.copysign(1.0, value) < 0


def chunks(cursor: sqlite3.Cursor) -> Iterator[list[tuple]]:
    while batch := cursor.fetchmany(CHUNK):
        yield batch


def _key(value: Any) -> tuple[type, Any]:
    """A memo key that keeps 1, 1.0, '1', True, 0.0 and -0.0 apart (their str(), hence their class label, differ)."""
    if isinstance(value, float):
        return type(value), float(value).hex()  # -0.0 == 0.0 as keys, but not as labels
    try:
        hash(value)
    except TypeError:
        return type(value), repr(value)
    return type(value), value


class Pairs:
    """Accumulators over the (prediction, truth) pairs of the successful rows, fed chunk by chunk."""

    def __init__(self, correct: Callable[[Any, Any], bool], regression: bool, retrieval: bool):
        self.correct = correct
        self.regression, self.retrieval = regression, retrieval
        self.n_ok = self.n_correct = 0
        self.labels: set[str] = set()
        self.tp: Counter[str] = Counter()
        self.fp: Counter[str] = Counter()
        self.fn: Counter[str] = Counter()
        self._memo: dict[tuple, tuple[bool, str, str]] = {}
        self._predicted: list[np.ndarray] = []
        self._true: list[np.ndarray] = []
        self.recall: dict[int, array] = {k: array("d") for k in (1, 5, 10)}
        self.reciprocal_ranks = array("d")

    def _judge(self, prediction: Any, truth: Any) -> tuple[bool, str, str]:
        key = (_key(prediction), _key(truth))
        known = self._memo.get(key)
        if known is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            known = self._memo[key] = (bool(self.correct(prediction, truth)), str(prediction), str(truth))
            if prediction is not None:
                self.labels.add(known[1])
        return known

    def add(self, predictions: Sequence[Any], truths: Sequence[Any], weights: Sequence[int] | None = None) -> None:
        """One chunk: per_class's tp/fp/fn by label, the correct count, and the regression/retrieval values."""
        if weights is None:
            counted = _distinct_pairs(predictions, truths)
            if counted is not None:  # the usual case: the chunk's distinct pairs, counted in C
                for (_, prediction, _, truth), weight in counted.items():
                    self._count(prediction, truth, weight)
            else:
                for prediction, truth in zip(predictions, truths, strict=True):
                    self._count(prediction, truth, 1)
        else:
            for prediction, truth, weight in zip(predictions, truths, weights, strict=True):
                self._count(prediction, truth, weight)
        if self.regression:
            self._add_regression(predictions, truths)
        if self.retrieval:
            self._add_retrieval(predictions, truths)

    def _count(self, prediction: Any, truth: Any, weight: int) -> None:
        is_correct, predicted_label, true_label = self._judge(prediction, truth)
        self.n_ok += weight
        self.labels.add(true_label)
        if is_correct:
            self.n_correct += weight
            self.tp[predicted_label] += weight
        else:
            self.fp[predicted_label] += weight
            self.fn[true_label] += weight

    def _add_regression(self, predictions: Sequence[Any], truths: Sequence[Any]) -> None:
        numbers = [(number(p), number(t)) for p, t in zip(predictions, truths, strict=True)]
        kept = [(p, t) for p, t in numbers if p is not None and t is not None]
        self._predicted.append(np.asarray([p for p, _ in kept], dtype=float))
        self._true.append(np.asarray([t for _, t in kept], dtype=float))

    def _add_retrieval(self, rankings: Sequence[Any], truths: Sequence[Any]) -> None:
        """recall@k and the reciprocal rank of each query, in row order (metrics._retrieval's pairs)."""
        for ranking, truth in zip(rankings, truths, strict=True):
            relevant = {str(t) for t in as_list(truth)}
            if not relevant:
                continue
            ranked = [str(d) for d in as_list(ranking)]
            for k, values in self.recall.items():
                values.append(len(set(ranked[:k]) & relevant) / len(relevant))
            self.reciprocal_ranks.append(next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in relevant), 0.0))

    def regression_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([np.empty(0), *self._predicted]), np.concatenate([np.empty(0), *self._true])

    def per_class(self) -> dict[str, dict[str, float]]:
        """metrics.per_class from the counts: the same labels, in the same order, with the same formulas."""
        table = {}
        for label in sorted(self.labels):
            tp, fp, fn = self.tp[label], self.fp[label], self.fn[label]
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            table[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
        return table


REGRESSION = frozenset({"mae", "rmse", "r2"})
RETRIEVAL = frozenset({"recall_at_1", "recall_at_5", "recall_at_10", "mrr"})


class Aggregates:
    """What the metrics of one configuration need, each computed once, on first use."""

    def __init__(self, source: Source, names: Iterable[str], parse: Callable[[dict], Any], correct: str):
        self.source, self.names, self.parse = source, set(names), parse
        self.rule = registry.is_correct(correct)
        self._numbers: dict[tuple[str, bool], np.ndarray] = {}

    @cached_property
    def counts(self) -> dict[str, int]:
        s = self.source
        n, failed, hits = s.query(f"COUNT(*), SUM({s.failed}), SUM({s.hit})", tail="").fetchone()
        return {"n": n, "n_successful": n - (failed or 0), "n_failed": failed or 0, "n_cache_hits": hits or 0}

    def numbers(self, column: str, computed_only: bool = False) -> np.ndarray:
        """MetricInput.numbers: the column's int/float cells of the successful rows, in row order (fetched once)."""
        cached = self._numbers.get((column, computed_only))
        if cached is None:
            s, value = self.source, self.source.col(column)
            where = f"NOT {s.failed} AND typeof({value}) IN ('integer', 'real')"
            where += f" AND NOT {s.hit}" if computed_only else ""
            parts = [
                np.fromiter(chain.from_iterable(batch), float, len(batch)) for batch in chunks(s.query(value, where))
            ]
            cached = self._numbers[(column, computed_only)] = np.concatenate([np.empty(0), *parts])
        return cached

    def column_values(self, column: str, computed_only: bool = False) -> list[float]:
        """metrics._column_sum's numbers: every row's finite number (text cells parsed as metrics._number does)."""
        s, value = self.source, self.source.col(column)
        where = f"((typeof({value}) IN ('integer', 'real') AND {value} {FINITE}) OR typeof({value}) = 'text')"
        where += f" AND NOT {s.hit}" if computed_only else ""
        values: list[float] = []
        for batch in chunks(s.query(value, where)):
            numbers = (number(v) for (v,) in batch)
            values.extend(v for v in numbers if v is not None)
        return values

    def column_sum(self, column: str, computed_only: bool = False) -> float | None:
        values = self.column_values(column, computed_only)
        return float(sum(values)) if values else None

    @cached_property
    def pairs(self) -> Pairs:
        pairs = Pairs(self.rule, regression=bool(self.names & REGRESSION), retrieval=bool(self.names & RETRIEVAL))
        s = self.source
        if self.parse is stored_prediction and not (pairs.regression or pairs.retrieval):
            self._grouped(pairs)
            return pairs
        if self.parse is stored_prediction:
            selected = f"{s.col('prediction')}, {s.col('ground_truth')}"
            for batch in chunks(s.query(selected, f"NOT {s.failed}")):
                pairs.add([p for p, _ in batch], [t for _, t in batch])
            return pairs
        cursor = s.full_rows()
        names = [d[0] for d in cursor.description]
        for batch in chunks(cursor):
            rows = [dict(zip(names, values, strict=True)) for values in batch]
            pairs.add([self.parse(row) for row in rows], [row.get("ground_truth") for row in rows])
        return pairs

    def _grouped(self, pairs: Pairs) -> None:
        """Label metrics with the default parsing: one row per distinct (prediction, truth) cell pair.

        Counted by an upsert into a small table keyed by the pair (a b-tree of a few entries per row,
        no sort of a million rows). typeof() in the key keeps 1, 1.0 and '1' apart, as their str()
        differ; SQLite also equates -0.0 and 0.0 (whose str() differ too) and has no function that
        tells them apart, so the key holds the sign of a real zero, asked of Python for zeros only.
        """
        s, p, t = self.source, self.source.col("prediction"), self.source.col("ground_truth")
        s.con.create_function("bench_negative_zero", 1, _negative_zero, deterministic=True)
        # No NULL in the key: UNIQUE treats every NULL as distinct (a NULL cell is '' of typeof 'null').
        sign = "CASE WHEN typeof({0}) = 'real' AND {0} = 0 THEN bench_negative_zero({0}) ELSE 0 END"
        cell = "coalesce({0}, '')"
        s.con.execute(f"DROP TABLE IF EXISTS {PAIRS}")
        key = "tp, p, sp, tt, t, st"
        s.con.execute(f"CREATE TEMP TABLE {PAIRS.split('.')[1]} ({key}, n, UNIQUE ({key}))")
        try:
            s.con.execute(
                f"INSERT INTO {PAIRS} SELECT typeof({p}), {cell.format(p)}, {sign.format(p)}, "
                f"typeof({t}), {cell.format(t)}, {sign.format(t)}, 1 "
                f"FROM {SOURCE} WHERE NOT {s.failed} ON CONFLICT ({key}) DO UPDATE SET n = n + 1"
            )
            cells = "CASE tp WHEN 'null' THEN NULL ELSE p END, CASE tt WHEN 'null' THEN NULL ELSE t END, n"
            for batch in chunks(s.con.execute(f"SELECT {cells} FROM {PAIRS}")):
                pairs.add([row[0] for row in batch], [row[1] for row in batch], [row[2] for row in batch])
        finally:
            s.con.execute(f"DROP TABLE IF EXISTS {PAIRS}")

    def pooled(self, column: str) -> np.ndarray:
        """metrics._request_latencies: the JSON lists of the successful rows, pooled, in row order."""
        s, values = self.source, array("d")
        for batch in chunks(s.query(s.col(column), f"NOT {s.failed}")):
            for (cell,) in batch:
                numbers = (number(v) for v in as_list(cell))
                values.extend(v for v in numbers if v is not None)
        return np.frombuffer(values, dtype=float) if values else np.empty(0)


# -- one streamed form per declared metric ------------------------------------------------------------

Form = Callable[[Aggregates], Any]


def _accuracy(a: Aggregates) -> float | None:
    return a.pairs.n_correct / a.pairs.n_ok if a.pairs.n_ok else None


def _accuracy_strict(a: Aggregates) -> float | None:
    return a.pairs.n_correct / a.counts["n"] if a.counts["n"] else None


def _macro(key: str) -> Form:
    def compute(a: Aggregates) -> float | None:
        classes = {k: v for k, v in a.pairs.per_class().items() if v["support"] > 0}
        return float(np.mean([v[key] for v in classes.values()])) if classes else None

    return compute


def _percentile(q: float, pooled: str | None = None) -> Form:
    def compute(a: Aggregates) -> float | None:
        values = a.pooled(pooled) if pooled else a.numbers("latency")
        return float(np.percentile(values, q)) if values.size else None

    return compute


def _mean(column: str) -> Form:
    def compute(a: Aggregates) -> float | None:
        values = a.numbers(column)
        return float(values.mean()) if values.size else None

    return compute


def _requests_per_second(a: Aggregates) -> float | None:
    done, seconds = a.numbers("requests_ok"), a.numbers("burst_seconds")
    return float(done.sum() / seconds.sum()) if done.size and seconds.size and seconds.sum() > 0 else None


def _request_error_rate(a: Aggregates) -> float | None:
    failed, total = a.numbers("requests_failed"), a.numbers("requests_total")
    return float(failed.sum() / total.sum()) if total.size and total.sum() > 0 else None


def _error_rate(a: Aggregates) -> float | None:
    return a.counts["n_failed"] / a.counts["n"] if a.counts["n"] else None


def _throughput(a: Aggregates) -> float | None:
    times = a.numbers("function_time", computed_only=True)
    return float(times.size / times.sum()) if times.size and times.sum() > 0 else None


def _mae(a: Aggregates) -> float | None:
    predicted, true = a.pairs.regression_arrays()
    return float(np.abs(predicted - true).mean()) if predicted.size else None


def _rmse(a: Aggregates) -> float | None:
    predicted, true = a.pairs.regression_arrays()
    return float(np.sqrt(((predicted - true) ** 2).mean())) if predicted.size else None


def _r2(a: Aggregates) -> float | None:
    predicted, true = a.pairs.regression_arrays()
    if predicted.size < 2:
        return None
    total = float(((true - true.mean()) ** 2).sum())
    return 1.0 - float(((true - predicted) ** 2).sum()) / total if total > 0 else None


def _recall_at(k: int) -> Form:
    def compute(a: Aggregates) -> float | None:
        values = a.pairs.recall[k]
        return float(np.mean(np.frombuffer(values, dtype=float))) if values else None

    return compute


def _mrr(a: Aggregates) -> float | None:
    ranks = a.pairs.reciprocal_ranks
    return float(np.mean(np.frombuffer(ranks, dtype=float))) if ranks else None


def _cost_spent(a: Aggregates) -> float | None:
    if not a.column_values("cost_usd"):
        return None
    return a.column_sum("cost_usd", computed_only=True) or 0.0


def _cost_per_item(a: Aggregates) -> float | None:
    costs = a.column_values("cost_usd")
    return float(sum(costs) / len(costs)) if costs else None


def _cost_per_correct(a: Aggregates) -> float | None:
    cost = a.column_sum("cost_usd")
    return cost / a.pairs.n_correct if cost is not None and a.pairs.n_correct else None


PAIR = ("prediction", "ground_truth")
# Each declared metric's streamed form and the columns it reads (copied into temp._bench_src).
FORMS: dict[str, tuple[Form, tuple[str, ...]]] = {
    "accuracy": (_accuracy, PAIR),
    "accuracy_strict": (_accuracy_strict, PAIR),
    "f1_macro": (_macro("f1"), PAIR),
    "precision_macro": (_macro("precision"), PAIR),
    "recall_macro": (_macro("recall"), PAIR),
    "latency_mean": (_mean("latency"), ("latency",)),
    "error_rate": (_error_rate, ()),
    "throughput": (_throughput, ("function_time",)),
    "mae": (_mae, PAIR),
    "rmse": (_rmse, PAIR),
    "r2": (_r2, PAIR),
    "prediction_std": (_mean("prediction_std"), ("prediction_std",)),
    "total_cost": (lambda a: a.column_sum("cost_usd"), ("cost_usd",)),
    "cost_spent": (_cost_spent, ("cost_usd",)),
    "cost_per_item": (_cost_per_item, ("cost_usd",)),
    "cost_per_correct": (_cost_per_correct, ("cost_usd", *PAIR)),
    "mrr": (_mrr, PAIR),
    "requests_per_second": (_requests_per_second, ("requests_ok", "burst_seconds")),
    "request_error_rate": (_request_error_rate, ("requests_failed", "requests_total")),
    "cpu_percent": (_mean("cpu"), ("cpu",)),
    "memory_percent": (_mean("p_memory_percent"), ("p_memory_percent",)),
    **{f"latency_p{q}": (_percentile(q), ("latency",)) for q in (50, 95, 99)},
    **{f"request_latency_p{q}": (_percentile(q, "request_latencies"), ("request_latencies",)) for q in (50, 95, 99)},
    **{f"recall_at_{k}": (_recall_at(k), PAIR) for k in (1, 5, 10)},
    **{c: (lambda a, c=c: a.column_sum(c), (c,)) for c in ("prompt_tokens", "completion_tokens", "total_tokens")},
}
STREAMED: dict[str, Form] = {name: form for name, (form, _) in FORMS.items()}


def check_forms() -> None:
    """Every declared metric has a streamed form and every form a declaration (fails at import otherwise)."""
    declared = set(registry.specs())
    if set(FORMS) != declared:
        raise RuntimeError(
            f"aggregate.FORMS: no streamed form for {sorted(declared - set(FORMS))}, "
            f"undeclared forms {sorted(set(FORMS) - declared)}"
        )


check_forms()


def compute(
    con: sqlite3.Connection,
    table: str,
    where: dict[str, Any],
    chosen: Sequence[str],
    parse: Callable[[dict], Any] | None = None,
    correct: str = "equal",
) -> dict[str, Any]:
    """metrics.compute() over the latest rows matching `where`, read from the database, not from a list."""
    parse = parse or parse_prediction_fn()
    names = list(dict.fromkeys(n for name in chosen for n in (name, *registry.companions(name))))
    for name in names:
        if name not in FORMS:
            raise KeyError(f"unknown metric {name!r}: known metrics are {', '.join(sorted(FORMS))}")
    source = Source(con, table, where, (column for name in names for column in FORMS[name][1]))
    try:
        aggregates = Aggregates(source, names, parse, correct)
        values: dict[str, Any] = dict(aggregates.counts)
        for name in names:
            value = FORMS[name][0](aggregates)
            values[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        if "f1_macro" in chosen:
            values["per_class"] = json.dumps(aggregates.pairs.per_class(), sort_keys=True)
        return values
    finally:
        source.close()
