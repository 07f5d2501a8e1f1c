"""The generated runner under real conditions the generated tests cannot afford (issue 4).

The harness's unit tests check the runner in-process (cache, retries, resume after an interrupt,
retry-errors, threads, progress: test_harness_run.py, test_executors.py). Here, on one rendered project:

* a real `kill -9` of a running `bench run` after some rows were written, then a resume;
* processes and Dask (a LocalCluster, through `--scheduler`) record the same tables as
  serial, ignoring timing and environment columns, with system parameters logged, read back
  with xetrack's Reader on both engines (the run itself does not depend on the engine);
* `make retry-errors` re-runs only the error rows.

The project's predict() is wrapped (as a user could) with knobs read from the environment: a
per-call sleep, so a run can be killed mid-way, and input ids to fail permanently.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import toy
from conftest import make, project_env, run

PACKAGE = "my_benchmark"  # the default answers' package (a shared render)

WRAPPER = '''

# --- test_runner.py: slow down or fail on demand (RUNNER_SLEEP seconds, RUNNER_FAIL ids) ---
import os as _os
import time as _time

_predict = predict


def predict(item, params):
    """predict() with a configurable delay and permanent failures, for the runner tests."""
    _time.sleep(float(_os.environ.get("RUNNER_SLEEP", "0")))
    if str(item.get("input_id")) in _os.environ.get("RUNNER_FAIL", "").split(","):
        return {**_predict(item, params), "error": "injected", "error_type": "INVALID_VALUE"}
    return _predict(item, params)
'''

# Printed by a helper run inside the project's venv: the tables, as xetrack's Reader sees them.
DUMP = """
import json, sys
from xetrack import Reader
from bench_harness._core.config import load_config
from bench_harness._storage.duck import ensure_sqlite_extension
cfg = load_config()
if cfg.engine == "duckdb":
    ensure_sqlite_extension()
out = {{}}
for table in (cfg.predictions_table, cfg.metrics_table):
    df = Reader(str(cfg.db_path), engine=cfg.engine, table=table).to_df()
    out[table] = json.loads(df.to_json(orient="records"))
with open(sys.argv[1], "w") as handle:  # not stdout: DuckDB may print a progress bar there
    json.dump(out, handle)
"""

VOLATILE = toy.RUN_VOLATILE_COLUMNS | {"latency_p50", "latency_p95", "latency_p99", "latency_mean"}
SYSTEM = ("cpu", "memory_percent", "p_memory_percent", "disk_percent")


@pytest.fixture(scope="module")
def project(rendered) -> Path:
    """One rendered project with the wrapped predict(), small write batches and the dask extra."""
    root = rendered("runner", {})  # engine duckdb, the default
    predict = root / "src" / PACKAGE / "predict.py"
    if WRAPPER not in predict.read_text():
        predict.write_text(predict.read_text() + WRAPPER)
    toml = root / "benchmark.toml"
    text = toml.read_text()
    for old, new in (
        ("write_batch_size = 10000", "write_batch_size = 10"),
        ("write_interval_seconds = 1.0", "write_interval_seconds = 0.2"),
        ("log_system_params = false", "log_system_params = true"),
    ):
        text = text.replace(old, new)
    toml.write_text(text)
    run(root, "uv", "sync", "--quiet", "--extra", "dask")
    return root


def bench(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return run(project, ".venv/bin/bench", *args, **env)


def query(project: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(project / "benchmark.db") as con:
        return con.execute(sql, params).fetchall()


def set_engine(project: Path, engine: str) -> None:
    """What `copier update -d engine=...` changes: the engine line of benchmark.toml."""
    toml = project / "benchmark.toml"
    text = toml.read_text()
    for name in ("sqlite", "duckdb"):
        text = text.replace(f'engine = "{name}"', f'engine = "{engine}"')
    toml.write_text(text)


def tables(project: Path, versions: list[str]) -> dict[str, dict[str, list[dict]]]:
    """version -> both tables as Reader returns them, without timing/environment columns."""
    dump = project / "dump.json"
    run(project, ".venv/bin/python", "-c", DUMP.format(pkg=PACKAGE), str(dump))
    result: dict[str, dict[str, list[dict]]] = {version: {} for version in versions}
    for table, rows in json.loads(dump.read_text()).items():
        for version in versions:
            mine = [r for r in rows if r["experiment_version"] == version]
            kept = [{k: v for k, v in r.items() if k not in VOLATILE} for r in mine]
            result[version][table] = sorted(kept, key=lambda r: (r["config_id"], str(r.get("input_id"))))
    return result


def test_sigkill_mid_run_then_resume_records_each_prediction_once(project: Path) -> None:
    # --no-cache: every row computed (slowly), even when another test of this project recorded them first
    flags = ["--quiet", "--no-cache", "--executor", "serial", "--experiment-version", "k1"]
    command = [".venv/bin/bench", "run", *flags]
    process = subprocess.Popen(
        command, cwd=project, env=project_env(RUNNER_SLEEP="0.02"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        written = 0
        while written < 20 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            try:
                written = query(project, "SELECT COUNT(*) FROM predictions WHERE experiment_version = 'k1'")[0][0]
            except sqlite3.OperationalError:  # the table does not exist yet
                written = 0
        assert process.poll() is None, "the run finished before it could be killed: raise RUNNER_SLEEP"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL and written >= 20
    killed = query(project, "SELECT COUNT(*) FROM predictions WHERE experiment_version = 'k1'")[0][0]
    if query(project, "SELECT name FROM sqlite_master WHERE name = 'metrics'"):
        assert query(project, "SELECT COUNT(*) FROM metrics WHERE experiment_version = 'k1'") == [(0,)]

    done = bench(project, "run", *flags)
    assert f"{killed} already recorded" in done.stdout, done.stdout
    counts = query(
        project,
        "SELECT config_id, input_id, COUNT(*) FROM predictions WHERE experiment_version = 'k1' "
        "GROUP BY config_id, input_id",
    )
    configs = query(project, "SELECT COUNT(DISTINCT config_id) FROM predictions WHERE experiment_version = 'k1'")
    assert counts and {c for _, _, c in counts} == {1}
    assert len(counts) > killed
    per_config = query(project, "SELECT config_id, COUNT(*) FROM metrics WHERE experiment_version = 'k1' GROUP BY 1")
    assert len(per_config) == configs[0][0] and {n for _, n in per_config} == {1}
    n_per_config = query(project, "SELECT DISTINCT n FROM metrics WHERE experiment_version = 'k1'")
    assert n_per_config == [(len(counts) // configs[0][0],)]


def test_every_executor_records_the_same_tables_as_serial(project: Path) -> None:
    """The executors that run the project's code in other processes (processes, Dask), each once: what a
    run records does not depend on the engine (the file is SQLite for both, the engine only reads it),
    so both engines' Readers read the same runs back. Threads run the same code in-process:
    test_harness_run.test_threads_record_the_same_table_as_serial_with_system_params."""
    versions = [f"x-{name}" for name in ("serial", "processes", "dask")]
    bench(project, "run", "--quiet", "--no-cache", "--executor", "serial", "--experiment-version", "x-serial")
    scheduler = subprocess.Popen(  # a Dask cluster, reached through --scheduler as on a real one
        [
            ".venv/bin/python",
            "-c",
            "from dask.distributed import LocalCluster; import time; "
            "c = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol='tcp', "
            "dashboard_address=None); "
            "print(c.scheduler_address, flush=True); time.sleep(600)",
        ],
        cwd=project,
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = scheduler.stdout.readline().strip()
        assert address.startswith("tcp://"), address
        runs = {"processes": ["--workers", "2"], "dask": ["--scheduler", address]}
        for executor, extra in runs.items():
            flags = ["--quiet", "--no-cache", "--executor", executor, *extra, "--experiment-version"]
            bench(project, "run", *flags, f"x-{executor}")
    finally:
        scheduler.kill()
        scheduler.wait(timeout=30)
    missing = " OR ".join(f"{column} IS NULL" for column in SYSTEM)
    for version in versions:
        sql = f"SELECT COUNT(*) FROM predictions WHERE experiment_version = ? AND ({missing})"
        assert query(project, sql, version) == [(0,)], f"{version}: system params missing"
    for engine in ("duckdb", "sqlite"):
        set_engine(project, engine)
        recorded = tables(project, versions)
        expected = recorded.pop("x-serial")
        assert len(expected["predictions"]) > 100 and expected["metrics"], engine
        for version, found in recorded.items():
            assert found == expected, (engine, version)
    set_engine(project, "duckdb")


def test_make_retry_errors_reruns_only_the_error_rows(project: Path) -> None:
    # Self-sufficient: under xdist this worker's copy of the project may not have run the other tests.
    bench(project, "run", "--quiet", "--experiment-version", "r0")
    ids = [str(r[0]) for r in query(project, "SELECT DISTINCT input_id FROM predictions ORDER BY input_id LIMIT 2")]
    assert len(ids) == 2
    bench(project, "run", "--quiet", "--no-cache", "--experiment-version", "r1", RUNNER_FAIL=",".join(ids))
    failed = query(project, "SELECT rowid FROM predictions WHERE experiment_version = 'r1' AND error IS NOT NULL")
    kept = query(project, "SELECT rowid FROM predictions WHERE experiment_version = 'r1' AND error IS NULL")
    assert failed and kept
    others = query(project, "SELECT COUNT(*) FROM predictions WHERE experiment_version != 'r1'")

    done = make(project, "retry-errors", "ARGS=--quiet --no-cache")  # the latest version, r1
    assert f"{len(failed)} computed" in done.stdout and "0 cache hits" in done.stdout, done.stdout
    assert query(project, "SELECT COUNT(*) FROM predictions WHERE experiment_version = 'r1' AND error IS NOT NULL") == [
        (0,)
    ]
    after = query(project, "SELECT rowid FROM predictions WHERE experiment_version = 'r1' AND error IS NULL")
    assert set(kept) < set(after) and len(after) == len(kept) + len(failed)
    history = query(project, "SELECT COUNT(*) FROM predictions_error_history WHERE experiment_version = 'r1'")
    assert history == [(len(failed),)]
    assert query(project, "SELECT COUNT(*) FROM predictions WHERE experiment_version != 'r1'") == others
    assert query(project, "SELECT n_failed FROM metrics WHERE experiment_version = 'r1'") == [(0,)] * len(
        query(project, "SELECT 1 FROM metrics WHERE experiment_version = 'r1'")
    )
