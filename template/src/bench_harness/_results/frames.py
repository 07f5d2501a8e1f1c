"""Results as pandas DataFrames, for notebooks and your own scripts (public: `bench_harness.results`).

Everything is read through DuckDB with the database attached read-only as `db`, so nothing here can
change the DVC-tracked database. Experiments are picked from the harness's own rows (they carry a
`config_id` and an `experiment_version` e0.0.N) and ordered as versions, not as text or by rowid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._core.config import BenchConfig, load_config
from .._core.env import TAG_PATTERN, version_key
from .._storage.store import METRICS_MARKERS, PREDICTION_MARKERS, harness_rows_sql, quote
from .analysis import connect, sqlite_columns


def _config(cfg: BenchConfig | None, dev: bool) -> tuple[BenchConfig, Path]:
    cfg = cfg or load_config()
    return cfg, cfg.dev_db_path if dev else cfg.db_path


def sql(query: str, *, dev: bool = False, cfg: BenchConfig | None = None) -> Any:
    """Run a DuckDB query (tables as `db.<name>`) and return a pandas DataFrame."""
    cfg, db_path = _config(cfg, dev)
    con = connect(db_path)
    try:
        return con.execute(query).df()
    finally:
        con.close()


def experiment_versions(*, cfg: BenchConfig | None = None) -> list[str]:
    """The experiments recorded by the harness, oldest first (e0.0.9 before e0.0.10)."""
    cfg, db_path = _config(cfg, False)
    table = cfg.metrics_table
    harness_rows = harness_rows_sql(sqlite_columns(db_path, table), METRICS_MARKERS)
    if harness_rows == "FALSE":
        return []
    frame = sql(f"SELECT DISTINCT experiment_version FROM db.{quote(table)} WHERE {harness_rows}", cfg=cfg)
    found = [str(v) for v in frame["experiment_version"] if TAG_PATTERN.match(str(v))]
    return sorted(found, key=version_key)


def _rows(table: str, version: str | None, dev: bool, cfg: BenchConfig | None) -> Any:
    cfg, db_path = _config(cfg, dev)
    name = getattr(cfg, f"{table}_table")
    if version == "latest":
        versions = experiment_versions(cfg=cfg) if not dev else []
        version = versions[-1] if versions else None
    where = ""
    if version:  # one experiment: the harness's rows of it, never rows another tool logged in the table
        markers = PREDICTION_MARKERS if table == "predictions" else METRICS_MARKERS
        where = f" WHERE experiment_version = $version AND {harness_rows_sql(sqlite_columns(db_path, name), markers)}"
    con = connect(db_path)
    try:
        return con.execute(f"SELECT * FROM db.{quote(name)}{where}", {"version": version} if version else {}).df()
    finally:
        con.close()


def load_predictions(version: str | None = "latest", *, dev: bool = False, cfg: BenchConfig | None = None) -> Any:
    """The predictions table (a row per input and configuration) of "latest", "e0.0.N" or None (all)."""
    return _rows("predictions", version, dev, cfg)


def load_metrics(version: str | None = "latest", *, dev: bool = False, cfg: BenchConfig | None = None) -> Any:
    """The metrics table (a row per configuration) of "latest", "e0.0.N" or None (all)."""
    return _rows("metrics", version, dev, cfg)
