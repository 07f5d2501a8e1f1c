"""The report at scale: `make report` on 1,000,000 prediction rows, timed, with its peak memory.

Renders the template (default answers, no post-copy tasks) into a temporary folder, writes a
predictions table of N rows straight into SQLite with one INSERT ... SELECT over a recursive
CTE (a few seconds, no Python loop), then runs the generated `bench report` in a child process
and prints its wall time and peak resident memory (ru_maxrss of the child). The acceptance
figures are < 60 s and < 1 GiB for 1,000,000 rows.

    .venv/bin/python benchmarks/scale_report.py [--rows 1000000] [--configs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
PACKAGE = "scale_bench"
LIMIT_SECONDS = 60.0
LIMIT_BYTES = 1024**3

COLUMNS = """track_id TEXT, timestamp TEXT, function_name TEXT, function_time REAL, cache TEXT, input_id TEXT,
prediction INTEGER, raw_response TEXT, ground_truth INTEGER, latency REAL, error TEXT, error_type TEXT,
difficulty TEXT, input_length INTEGER, predicted_prob REAL, retry_count INTEGER, params_model_name TEXT,
params_regularization REAL, params_seed INTEGER, config_id TEXT, input_digest TEXT, code_version TEXT,
cache_key TEXT, experiment_version TEXT, phase TEXT"""


def render(destination: Path) -> Path:
    """The generated project, rendered from the working tree without its post-copy tasks (no uv sync)."""
    import warnings

    from copier import run_copy

    warnings.filterwarnings("ignore", message="Dirty template changes")  # the working tree is rendered on purpose
    run_copy(str(TEMPLATE), str(destination), data={"project_name": "scale-bench"}, defaults=True, unsafe=True,
             vcs_ref="HEAD", quiet=True, skip_tasks=True)  # fmt: skip
    return destination


def fill(db: Path, rows: int, configs: int) -> float:
    """N rows: `configs` configurations over rows/configs inputs; accuracy, errors and hits vary by config."""
    started = time.perf_counter()
    inputs = rows // configs
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE predictions ({COLUMNS})")
        con.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}),
            r AS (SELECT i, i % {configs} AS c, i / {configs} AS k,
                         abs(((i * 2654435761) % 1000003)) AS h FROM n)
            INSERT INTO predictions
            SELECT 'run-' || c, '2026-01-01 00:00:00.000000', 'predict',
                   CASE WHEN h % 10 < c THEN 0.0 ELSE 0.001 + (h % 997) / 1e5 END,
                   CASE WHEN h % 10 < c THEN 'run-old' ELSE '' END,
                   'item-' || k,
                   CASE WHEN h % 500 = 0 THEN NULL WHEN h % 100 < 60 + 7 * c THEN k % 3 ELSE (k + 1) % 3 END,
                   CASE WHEN h % 500 = 0 THEN NULL ELSE
                        '{{"classes": [0, 1, 2], "probabilities": [0.2, 0.3, 0.5], "id": ' || k || '}}' END,
                   k % 3,
                   CASE WHEN h % 500 = 0 THEN NULL ELSE 0.01 * (1 + c) + (h % 1000) / 1e4 END,
                   CASE WHEN h % 500 = 0 THEN 'TimeoutError: read timed out' END,
                   CASE WHEN h % 500 = 0 THEN 'API_TIMEOUT' END,
                   CASE k % 3 WHEN 0 THEN 'easy' WHEN 1 THEN 'medium' ELSE 'hard' END,
                   20 + (k * 7919) % 480,
                   0.34 + (h % 66) / 100.0, 0,
                   'model_' || c, 1.0, 0, 'cfg' || c, 'd' || k, 'src:1', 'key-' || i, 'e0.0.1', 'experiment'
            FROM r"""
        )
    assert inputs > 0
    return time.perf_counter() - started


def run_report(project: Path, db: Path) -> tuple[float, int, str]:
    """Wall seconds and peak RSS (bytes) of `bench report` in a child process."""
    env = dict(os.environ, BENCH_ROOT=str(project), BENCH_DB=str(db), PYTHONPATH=str(project / "src"))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench_harness", "report", "--out", str(project / "reports")],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"bench report failed:\n{done.stdout}\n{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kilobytes on Linux
    return seconds, peak, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--configs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale-report-") as tmp:
        project = render(Path(tmp) / "project")
        db = project / "benchmark.db"
        filled = fill(db, args.rows, args.configs)
        seconds, peak, out = run_report(project, db)
        html = project / "reports" / "e0.0.1" / "report.html"
        size = html.stat().st_size
    ok = seconds < LIMIT_SECONDS and peak < LIMIT_BYTES
    print(f"rows written in {filled:.1f}s (SQLite INSERT ... SELECT); report.html {size / 1024:.0f} KiB")
    print(
        f"make report on {args.rows:,} prediction rows, {args.configs} configurations: "
        f"{seconds:.1f} s (limit {LIMIT_SECONDS:.0f} s), peak memory {peak / 2**20:.0f} MiB "
        f"(limit {LIMIT_BYTES / 2**20:.0f} MiB): {'OK' if ok else 'OVER THE LIMIT'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
