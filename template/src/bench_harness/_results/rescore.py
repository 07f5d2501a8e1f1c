"""`make rescore`: apply the current scoring.parse_prediction to stored rows, without calling predict().

Template-owned. The guide's "save raw responses, parse later": after a change to scoring.py,
this re-reads the rows of one experiment version (raw_response included), writes the parsed
value into the new column `scored_prediction` (with `scorer_version`, a digest of scoring.py),
and appends one metrics row per configuration computed with the new parsing, marked with the
same `scorer_version`. The original `prediction` and metrics rows are never modified, so the
report and `make sql` can compare scorer versions. The model is not called: nothing is paid twice.
"""

from __future__ import annotations

import hashlib
import inspect
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._core import env
from .._core.config import BenchConfig
from .._results import metrics as metrics_mod
from .._storage.store import Store, harness_rows_sql, latest_version, quote, timestamp, to_cell

CHUNK = 5_000


def scorer_version(parse: Callable[[dict], Any]) -> str:
    """A digest of the module that defines the parser: it changes whenever scoring.py changes."""
    try:
        source = inspect.getsource(inspect.getmodule(parse) or parse)
    except (OSError, TypeError):
        source = getattr(parse, "__qualname__", repr(parse))
    return "scoring:" + hashlib.sha256(source.encode()).hexdigest()[:12]


def rescore_rows(store: Store, table: str, version: str, parse: Callable[[dict], Any], tag: str) -> tuple[int, int]:
    """Write scored_prediction and scorer_version on every row of `version`; (rows, changed)."""
    # Typed like `prediction`: a TEXT column would turn a re-scored 1 into '1' (SQLite's type affinity).
    declared = store.columns(table).get("prediction", "TEXT")
    example = {"INTEGER": 0, "REAL": 0.0}.get(declared.upper(), "")
    store.ensure_columns(table, [{"scored_prediction": example, "scorer_version": ""}])
    con = store.conn
    con.row_factory = sqlite3.Row
    total = changed = 0
    own = harness_rows_sql(store.columns(table))  # rows another tool logged in the table are not re-scored
    cursor = con.execute(
        f"SELECT rowid AS _rid, * FROM {quote(table)} WHERE experiment_version = ? AND {own}", (version,)
    )
    updates = []
    while batch := cursor.fetchmany(CHUNK):
        for record in batch:
            row = dict(record)
            value = None if row.get("error") else to_cell(parse(row))
            total += 1
            changed += value is not None and not metrics_mod.same(value, row.get("prediction"))
            updates.append((value, tag, row["_rid"]))
    con.row_factory = None
    with store.transaction():
        con.executemany(f"UPDATE {quote(table)} SET scored_prediction = ?, scorer_version = ? WHERE rowid = ?", updates)
    return total, changed


def rescore_metrics(cfg: BenchConfig, store: Store, version: str, parse: Callable[[dict], Any], tag: str) -> list[dict]:
    """One new metrics row per configuration of `version`, computed with `parse`."""
    table = cfg.predictions_table
    config_ids = [
        r[0]
        for r in store.query(
            f"SELECT DISTINCT config_id FROM {quote(table)} WHERE experiment_version = ? "
            f"AND {harness_rows_sql(store.columns(table))} ORDER BY 1",
            [version],
        )
    ]
    written = []
    for cid in config_ids:
        rows = store.latest_rows(table, {"experiment_version": version, "config_id": cid})
        first = rows[0]
        row: dict[str, Any] = {"track_id": first.get("track_id"), "timestamp": timestamp()}
        row.update({k: v for k, v in first.items() if k.startswith("params_")})
        row.update(config_id=cid, experiment_version=version, phase=first.get("phase"), scorer_version=tag)
        # The commit whose scoring.py made these numbers (preflight compares code with the last metrics row).
        row.update(code_commit=env.code_commit(cfg.root), git_dirty=int(env.is_dirty(cfg.root)))
        row.update(metrics_mod.compute(rows, cfg.metrics, parse, cfg.correct))
        store.delete_where(cfg.metrics_table, {"experiment_version": version, "config_id": cid, "scorer_version": tag})
        store.insert(cfg.metrics_table, [row])
        written.append(row)
    return written


def rescore(
    cfg: BenchConfig, db_path: Path, version: str | None = None, parse: Callable[[dict], Any] | None = None
) -> dict[str, Any]:
    """Re-score one version (default: the latest); returns what was done."""
    parse = parse or metrics_mod.parse_prediction_fn()
    version = version or latest_version(db_path, cfg.predictions_table)
    if not version:
        raise ValueError(f"no recorded rows in {db_path}: run `make experiment` first")
    tag = scorer_version(parse)
    with Store(db_path) as store:
        total, changed = rescore_rows(store, cfg.predictions_table, version, parse, tag)
        if not total:
            raise ValueError(f"version {version!r} has no rows in {cfg.predictions_table}")
        rows = rescore_metrics(cfg, store, version, parse, tag)
    return {"version": version, "scorer_version": tag, "rows": total, "changed": changed, "metrics": rows}
