"""The work after a run at scale: metrics rows, the printed table and the tag message on N prediction rows.

Renders the template (default answers: the classification kind, no post-copy tasks), fills its
predictions table with N rows of ONE configuration straight in SQLite (scale_report.fill: an
INSERT ... SELECT, no Python loop), then times, in a child process each, what `bench experiment`
does once the run is over: `metrics.log_metrics` (+ the printed table + the tag message), and
prints the wall time and peak resident memory (ru_maxrss) of each.

Two parsings are measured: the kind's own `scoring.parse_prediction` (every successful row goes
through it, read in chunks) and the default one (the stored `prediction`: SQL groups the pairs).
`--before` also times the previous path (every row as a dict, then metrics.compute) for the same
database. Exits 1 when the work after the run on 1,000,000 rows takes more than 5 s with the default
parsing (the harness's own work); the kind's parse_prediction, user code run once per row, is printed
beside it without a target.

    .venv/bin/python benchmarks/post_run.py [--rows 1000000 100000] [--before]

`run_all.py` may import `measure(rows)`, which returns the figures as rows of (label, value, target).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_report import fill, render  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_ROWS = 1_000_000

# Runs in the child: BENCH_ROOT is the rendered project, PYTHONPATH its src (bench_harness + the user package).
CHILD = r"""
import json, resource, sys, time
mode = sys.argv[1]
from bench_harness._cli.table import format_table, metrics_columns
from bench_harness._core.config import load_config
from bench_harness._core.user import user_module
from bench_harness._results import metrics
from bench_harness._run.runner import RunSummary
from bench_harness._storage import keys
from bench_harness._storage.store import Store
from bench_harness._versioning import versioning

cfg = load_config()
config = user_module("params").grid()[0]
cid = keys.config_id(config)
if mode == "prepare":
    with Store(cfg.db_path) as store:
        store.conn.execute("UPDATE predictions SET config_id = ?", (cid,))
        store.ensure_table("predictions")  # the indexes a run's database has
    sys.exit(0)
summary = RunSummary("e0.0.1", "experiment", configs=[config], track_ids={cid: "run-0"})
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
if mode == "before":  # the previous path: every latest row as a dict, then metrics.compute
    with Store(cfg.db_path) as store:
        where = {"experiment_version": "e0.0.1", "phase": "experiment", "config_id": cid}
        rows = [metrics.compute(store.latest_rows(cfg.predictions_table, where), cfg.metrics, None, cfg.correct)]
else:
    rows = metrics.log_metrics(cfg, summary)
table = format_table(rows, metrics_columns(rows, cfg))
message = versioning.tag_message(rows, cfg.metrics, "abc1234")
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak, "rss_before": rss_before, "message": message}))
"""


def child(project: Path, mode: str) -> dict[str, Any]:
    env = dict(os.environ, BENCH_ROOT=str(project), PYTHONPATH=str(project / "src"))
    env.pop("BENCH_DB", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"post-run child ({mode}) failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]) if mode != "prepare" else {}


def default_parsing(project: Path) -> None:
    """Drop the kind's parse_prediction: the metrics then score the stored `prediction` (SQL groups the pairs)."""
    scoring = next((project / "src").glob("*/scoring.py"))
    scoring.write_text('"""No parse_prediction: the stored prediction is scored."""\n')


def measure(rows: int, before: bool = False) -> list[tuple[str, float, float | None]]:
    """(label, value, target) rows: seconds and peak MiB of the post-run work on `rows` prediction rows."""
    results: list[tuple[str, float, float | None]] = []
    # The target is the harness's own work: with the default parsing, nothing runs per row in Python.
    # The kind's parse_prediction is user code that runs once per successful row: printed, no target.
    target = TARGET_SECONDS if rows >= TARGET_ROWS else None
    with tempfile.TemporaryDirectory(prefix="post-run-") as tmp:
        project = render(Path(tmp) / "project")
        fill(project / "benchmark.db", rows, 1)
        child(project, "prepare")
        modes = [("kind's parse_prediction", "after")] + ([("before (rows as dicts)", "before")] if before else [])
        for label, mode in modes:
            figures = child(project, mode)
            results.append((f"post-run {rows:,} rows, {label}: seconds", figures["seconds"], None))
            results.append((f"post-run {rows:,} rows, {label}: peak MiB", figures["peak"] / 2**20, None))
        default_parsing(project)
        figures = child(project, "after")
        results.append((f"post-run {rows:,} rows, default parsing: seconds", figures["seconds"], target))
        results.append((f"post-run {rows:,} rows, default parsing: peak MiB", figures["peak"] / 2**20, None))
        with sqlite3.connect(project / "benchmark.db") as con:
            assert con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == rows
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[TARGET_ROWS, 100_000])
    parser.add_argument("--before", action="store_true", help="also time the previous path (rows as dicts)")
    args = parser.parse_args()
    missed = False
    for rows in args.rows:
        for label, value, target in measure(rows, args.before):
            over = target is not None and value > target
            missed |= over
            limit = f" (target <= {target:g})" if target is not None else ""
            print(f"{label}: {value:.2f}{limit}{'  MISSED' if over else ''}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
