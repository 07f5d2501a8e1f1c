"""Performance of the generated harness, printed as ratios measured in one run (issue 4).

    .venv/bin/python benchmarks/run_all.py          # or: make benchmark

What it does, so the figures can be trusted:

1. renders this template (working tree, uncommitted changes included) with copier into a
   temporary folder, without the post-copy tasks (no `uv sync`: the template's own .venv already
   has the harness's dependencies);
2. replaces the user-owned files, as a user would, with a benchmark workload: `data.py` yields
   N synthetic items, `predict.py` is trivial (or sleeps 50 ms to simulate an API), `params.py`
   has one configuration;
3. imports the *rendered* harness from that folder and times `runner.run()` (planning, cache
   look-up, execution and recording: the whole run, progress accounting included) against
   xetrack's per-row pattern from the guide and raw `sqlite3.executemany` of the same rows.

Imports and interpreter start-up are excluded from every timing (each side is warmed up once).
The measures run in `--repeat` rounds (5), each round timing every side once, back to back: the
machine's speed drifts over seconds here, and interleaving gives every side the same chances.
Each rate is the best of its rounds (like `timeit`: the run least disturbed by other work). Before
each timed run the OS writes its dirty pages out (`os.sync()`), so one run's disk write-back does
not land in the next one's commits. The guide's per-row pattern costs about 1 ms a row, so it is
timed on fewer rows and reported as a rate; so is the 50 ms serial API run.

"Raw executemany" inserts exactly the rows the harness recorded, in one transaction, into the
same table: the same CREATE TABLE and the harness's two indexes (the cache and resume look-ups
need them; a table without indexes is printed too, for reference), in a database with the same page
size as the harness's. Timings are not assertions:
the script prints the targets and whether they were met, and exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sqlite3
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[1]
PACKAGE = "perfbench"

DATA_PY = '''
"""Synthetic items for the harness benchmark (N from $PERF_ITEMS)."""
import os


def load_items(limit=None):
    n = int(os.environ.get("PERF_ITEMS", "20000"))
    n = n if limit is None else min(n, limit)
    items = ({"input_id": i, "text": f"item {i}", "label": i % 3} for i in range(n))
    return items if os.environ.get("PERF_STREAM") else list(items)  # PERF_STREAM: a generator (the scale runs)
'''

PARAMS_PY = '''
"""One configuration: the benchmark measures the harness, not a grid."""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Params:
    model_name: str = "trivial"
    temperature: float = 0.0


def grid():
    return [Params()]
'''

PREDICT_PY = '''
"""A trivial predict (recording throughput), a 50 ms sleep (a simulated API call), a chat request to a
rate-limited local endpoint (LLM_BASE_URL), or ~2 ms of pure-Python work (CPU_LOOPS)."""
import time

PREDICT_VERSION = "perf-1"
API_LATENCY = 0.0  # the benchmark sets 0.05 for the simulated API
LLM = False  # the benchmark sets True for the rate-limited endpoint
CPU_LOOPS = 0  # the benchmark sets the loop count of ~2 ms


def burn(loops):
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def predict(item, params):
    started = time.perf_counter()
    if LLM:
        from bench_harness import chat_completion

        row = chat_completion("local-large", [{"role": "user", "content": f"Question: what is {item['input_id']} + 1"}])
        return {"prediction": row["raw_response"], **row}
    if CPU_LOOPS:
        burn(CPU_LOOPS)
    if API_LATENCY:
        time.sleep(API_LATENCY)
    return {
        "input_id": item["input_id"],
        "prediction": item["label"],
        "raw_response": "ok",
        "ground_truth": item["label"],
        "latency": time.perf_counter() - started,
        "error": None,
        "error_type": None,
    }
'''


SCORING_PY = '''
"""No parse_prediction: the stored prediction is the one scored (the workload returns its final answer)."""
'''


def settle() -> None:
    """Write the OS's dirty pages out before a timed run, so the previous run's write-back does not
    slow this one's commits (fsync waits on a busy disk): every side of every ratio gets the same."""
    os.sync()


def render(destination: Path) -> Path:
    """Render the template's working tree with defaults, then install the benchmark workload."""
    from copier import run_copy

    run_copy(
        str(TEMPLATE),
        str(destination),
        data={"package_name": PACKAGE, "project_name": "perfbench", "engine": "sqlite"},
        defaults=True,
        unsafe=True,
        vcs_ref="HEAD",
        quiet=True,
        skip_tasks=True,
    )
    package = destination / "src" / PACKAGE
    # No scoring.parse_prediction: the trivial predict returns its final prediction, so the figures are the
    # harness's own work (benchmarks/post_run.py prints the kind's per-row parse beside it).
    files = (("data.py", DATA_PY), ("params.py", PARAMS_PY), ("predict.py", PREDICT_PY), ("scoring.py", SCORING_PY))
    for name, text in files:
        (package / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return destination


class Harness:
    """The rendered harness, imported from the rendered project (BENCH_ROOT points at it)."""

    def __init__(self, project: Path, work: Path):
        os.environ["BENCH_ROOT"] = str(project)
        sys.path.insert(0, str(project / "src"))
        self.work = work
        self.config = importlib.import_module("bench_harness._core.config")
        self.runner = importlib.import_module("bench_harness._run.runner")
        self.predict = importlib.import_module(f"{PACKAGE}.predict")
        self.params = importlib.import_module(f"{PACKAGE}.params")
        self.data = importlib.import_module(f"{PACKAGE}.data")

    def cfg(self, db: str, **run: Any):
        import dataclasses

        cfg = self.config.load_config()
        return dataclasses.replace(cfg, db_path=self.work / db, run=dataclasses.replace(cfg.run, **run))

    def run(self, db: str, version: str, executor: str = "serial", workers: int | None = None, **run: Any):
        """Time one `runner.run()`; returns (seconds, summary)."""
        options = self.runner.RunOptions(
            experiment_version=version, executor=executor, workers=workers, show_progress=True
        )
        cfg = self.cfg(db, **run)
        settle()
        started = time.perf_counter()
        summary = self.runner.run(cfg, options)
        return time.perf_counter() - started, summary


def guide_pattern(h: Harness, n: int, db: Path, cache: Path) -> tuple[float, float]:
    """Rows/s of the guide's `Tracker(..., cache=dir).track(predict, args=[item, params])` per row.

    Returns (first run, re-run) rates; the re-run uses a new Tracker on the same database and
    cache directory, as a restarted script would.
    """
    from xetrack import Tracker

    os.environ["PERF_ITEMS"] = str(n)
    items = h.data.load_items()
    params = h.params.grid()[0]
    rates = []
    for _ in range(2):
        tracker = Tracker(str(db), cache=str(cache), warnings=False)
        settle()
        started = time.perf_counter()
        for item in items:
            tracker.track(h.predict.predict, args=[item, params])
        rates.append(len(items) / (time.perf_counter() - started))
    return rates[0], rates[1]


def raw_executemany(source: Path, table: str, version: str, indexes: bool) -> tuple[float, int]:
    """Rows/s of one `executemany` of exactly the rows the harness recorded, into a fresh table.

    The table is created by the harness's own CREATE TABLE, plus its indexes when `indexes`, in a
    database with the harness's page size.
    """
    with sqlite3.connect(source) as con:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]  # the harness's (store.PAGE_SIZE), not the default
        schema = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        index_sql = [
            r[0]
            for r in con.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
            )
        ]
        cursor = con.execute(f'SELECT * FROM "{table}" WHERE experiment_version = ?', (version,))
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" for _ in columns)})'
    target = source.with_name("raw.db")
    target.unlink(missing_ok=True)
    con = sqlite3.connect(target)
    con.execute(f"PRAGMA page_size={page_size}")
    con.execute(schema)
    for statement in index_sql if indexes else ():
        con.execute(statement)
    con.commit()
    settle()
    started = time.perf_counter()
    con.executemany(sql, rows)
    con.commit()
    rate = len(rows) / (time.perf_counter() - started)
    con.close()
    return rate, len(columns)


def one_round(h: Harness, args: argparse.Namespace, table: str, number: int) -> dict[str, float]:
    """Every rate of the speed targets once, back to back (rows/s).

    Rounds interleave the sides, so a slow spell of the machine (they last seconds here) lowers
    one round of every side instead of all the runs of one side; the best round of each is kept.
    """
    rates: dict[str, float] = {}
    rates["guide"], rates["guide_rerun"] = guide_pattern(
        h, args.guide_rows, h.work / f"guide{number}.db", h.work / f"guide-cache{number}"
    )
    os.environ["PERF_ITEMS"] = str(args.rows)
    seconds, summary = h.run(f"bench{number}.db", "b1")
    assert summary.computed == args.rows, summary
    rates["harness"] = args.rows / seconds
    recorded = h.work / f"bench{number}.db"
    rates["raw"], rates["columns"] = raw_executemany(recorded, table, "b1", indexes=True)
    rates["bare"], _ = raw_executemany(recorded, table, "b1", indexes=False)
    shutil.copy(recorded, h.work / f"cached{number}.db")
    seconds, summary = h.run(f"cached{number}.db", "b2")
    assert summary.cache_hits == args.rows and summary.computed == 0, summary
    rates["cached"] = args.rows / seconds
    return rates


def recording_rows(
    h: Harness, args: argparse.Namespace, rounds: list[dict[str, float]]
) -> list[tuple[str, float, float]]:
    """The recording targets, from each rate's best round."""
    best = {name: max(r[name] for r in rounds) for name in rounds[0]}  # each rate's best round
    width = int(best.pop("columns"))
    print(
        f"guide per-row pattern ({args.guide_rows:,} rows): {best['guide']:,.0f} rows/s, "
        f"re-run {best['guide_rerun']:,.0f} rows/s"
    )
    print(
        f"harness serial run ({args.rows:,} rows, {width} columns): {best['harness']:,.0f} rows/s; "
        f"raw executemany of the same rows into the same table: {best['raw']:,.0f} rows/s "
        f"(into a table without indexes: {best['bare']:,.0f} rows/s = {best['harness'] / best['bare']:.0%})"
    )
    print(f"fully cached re-run ({args.rows:,} rows): {best['cached']:,.0f} rows/s")
    return [
        ("recording vs guide per-row", best["harness"] / best["guide"], 50.0),
        ("recording vs raw executemany", best["harness"] / best["raw"], 0.40),
        ("cached re-run vs guide re-run", best["cached"] / best["guide_rerun"], 100.0),
    ]


def api_rows(h: Harness, args: argparse.Namespace, results: list[tuple[str, float, float]]) -> None:
    """A simulated 50 ms API call: 32 threads against serial."""
    h.predict.API_LATENCY = 0.05  # read by predict() at each call
    os.environ["PERF_ITEMS"] = str(args.api_serial_rows)
    seconds, summary = h.run("api-serial.db", "s1", cache=False)
    serial_rate = summary.computed / seconds
    os.environ["PERF_ITEMS"] = str(args.api_rows)
    seconds, summary = h.run("api-threads.db", "t1", executor="threads", workers=32, cache=False)
    threads_rate = summary.computed / seconds
    print(
        f"simulated API, 50 ms: serial ({args.api_serial_rows:,} rows) {serial_rate:,.1f} rows/s, "
        f"threads x32 ({args.api_rows:,} rows) {threads_rate:,.1f} rows/s"
    )
    results.append(("API threads x32 vs serial", threads_rate / serial_rate, 20.0))
    h.predict.API_LATENCY = 0.0


def failed_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute(f'SELECT count(*) FROM "{table}" WHERE error IS NOT NULL').fetchone()[0]


def rate_limited_llm(h: Harness, rows: int, limit: float) -> list[tuple[str, float, float]]:
    """Adaptive concurrency against the local LLM stand-in limited to `limit` requests/s (50 ms each).

    The adaptive run (at most 32 threads) should reach the limit with no failed row; beside it, a
    fixed 32-thread run: its 429s, its rate and its failed rows (retries used up).
    """
    import openai  # noqa: F401 - imported before the clock starts, as every other import is

    from bench_harness._clients.llm_server import LocalLLMServer

    table = h.config.load_config().predictions_table
    os.environ["PERF_ITEMS"] = str(rows)
    h.predict.LLM = True
    measured = {}
    try:
        for adaptive in (True, False):
            with LocalLLMServer({}, rate_limit=limit, latency_seconds=0.05) as server:
                os.environ["LLM_BASE_URL"] = server.base_url
                db = f"llm-{'adaptive' if adaptive else 'fixed'}.db"
                seconds, summary = h.run(
                    db, "l1", executor="threads", workers=32, cache=False, adaptive_concurrency=adaptive
                )
                failed = failed_rows(h.work / db, table)
                measured[adaptive] = ((summary.computed - failed) / seconds, failed, server.rate_limited)
    finally:
        h.predict.LLM = False
        os.environ.pop("LLM_BASE_URL", None)
    (rate, failed, limited), (fixed_rate, fixed_failed, fixed_limited) = measured[True], measured[False]
    print(
        f"rate-limited LLM stand-in ({limit:g} requests/s, 50 ms, {rows:,} requests): adaptive (max 32) "
        f"{rate:,.1f} rows/s = {rate / limit:.0%} of the limit, {failed} failed rows, {limited:,} 429s; "
        f"fixed 32 threads {fixed_rate:,.1f} good rows/s, {fixed_failed} failed rows, {fixed_limited:,} 429s"
    )
    return [
        ("adaptive LLM rate / limit", rate / limit, 0.90),
        ("adaptive LLM rows without error", (rows - failed) / rows, 1.0),
    ]


def cpu_processes(h: Harness, items: int) -> list[tuple[str, float, float]]:
    """A pure-Python predict of ~2 ms an item: 2 processes against serial (each run timed whole)."""
    loops, started = 20_000, time.perf_counter()
    h.predict.burn(loops)
    h.predict.CPU_LOOPS = calibrated = max(1, int(loops * 0.002 / (time.perf_counter() - started)))
    os.environ["PERF_ITEMS"] = str(items)
    try:
        serial, _ = h.run("cpu-serial.db", "c1", cache=False)
        parallel, summary = h.run("cpu-processes.db", "c1", executor="processes", workers=2, cache=False)
        assert summary.computed == items, summary
    finally:
        h.predict.CPU_LOOPS = 0
    print(
        f"CPU-bound predict (~2 ms, {items:,} items, {calibrated:,} loops): serial "
        f"{serial:.2f}s, 2 processes {parallel:.2f}s on {os.cpu_count()} cores (load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    return [("CPU 2 processes vs serial", serial / parallel, 1.7)]


# A child process of the scale measures: the run alone (`run`), or the whole `bench run` command
# (`command`: the run, then the metrics rows and the printed table), in the rendered project. It
# prints its own peak resident memory and the seconds of the run and of what came after it.
SCALE_CHILD = """
import json, resource, sys, time
mode = sys.argv[1]
from bench_harness._core.config import load_config
from bench_harness._run import runner
from bench_harness._cli.main import main
seen = {}
real_run = runner.run
def timed_run(*args, **kwargs):
    summary = real_run(*args, **kwargs)
    seen["run"], seen["tasks"] = summary.seconds, summary.computed + summary.cache_hits
    return summary
runner.run = timed_run
started = time.perf_counter()
if mode == "run":
    runner.run(load_config(), runner.RunOptions(experiment_version="s1", show_progress=False))
else:
    main(["run", "--quiet", "--experiment-version", "s1"])
whole = time.perf_counter() - started
usage = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
peak_kib = max(usage)
print("SCALE " + json.dumps({"whole": whole, "run": seen["run"], "tasks": seen["tasks"], "peak_mib": peak_kib / 1024}))
"""


def scale_child(project: Path, work: Path, items: int, mode: str) -> dict[str, float]:
    """One fresh process (`mode` run or command) over `items` streamed items, in a new database: its figures."""
    import json
    import subprocess

    db = work / f"scale-{mode}-{items}.db"
    db.unlink(missing_ok=True)
    environment = {
        **os.environ,
        "BENCH_ROOT": str(project),
        "BENCH_DB": str(db),
        "PYTHONPATH": str(project / "src"),
        "PERF_ITEMS": str(items),
        "PERF_STREAM": "1",
    }
    settle()
    done = subprocess.run(
        [sys.executable, "-c", SCALE_CHILD, mode], env=environment, capture_output=True, text=True, cwd=project
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("SCALE ")]
    if done.returncode or not lines:
        raise RuntimeError(f"scale child ({mode}, {items:,}) failed: {done.stdout[-2000:]}{done.stderr[-3000:]}")
    figures = json.loads(lines[-1].removeprefix("SCALE "))
    assert figures["tasks"] == items, figures
    db.unlink(missing_ok=True)
    return figures


def scale_rows(project: Path, work: Path, small: int, large: int) -> list[tuple]:
    """Peak memory at `small` and `large` streamed items (trivial predict, one configuration), run and command.

    Each figure comes from a fresh child process (its own ru_maxrss): the run alone (runner.run:
    plan, check, cache, compute, record) and the whole `bench run` command (the run, the metrics
    rows, the printed table). The work after the run is the command's time after its run returned.
    """
    figures = {(mode, n): scale_child(project, work, n, mode) for n in (small, large) for mode in ("run", "command")}
    for (mode, n), f in figures.items():
        print(
            f"scale, {mode:<7} {n:>9,} items: peak {f['peak_mib']:,.0f} MiB, run {f['run']:.1f} s, "
            f"after the run {f['whole'] - f['run']:.1f} s, whole {f['whole']:.1f} s"
        )
    run_small, run_large = figures[("run", small)], figures[("run", large)]
    whole_small, whole_large = figures[("command", small)], figures[("command", large)]
    label = f"{large // 1000:,}k" if large < 1_000_000 else f"{large / 1e6:g}M"
    base = f"{small // 1000}k"
    return [
        (f"run peak memory {label} / {base}", run_large["peak_mib"] / run_small["peak_mib"], 1.5, "max"),
        (f"command peak memory {label} / {base}", whole_large["peak_mib"] / whole_small["peak_mib"], 1.5, "max"),
        (f"command peak memory {label} (MiB)", whole_large["peak_mib"], 600.0, "max"),
        (f"work after the run {label} (s)", whole_large["whole"] - whole_large["run"], 5.0, "max"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the recording benchmark")
    parser.add_argument("--guide-rows", type=int, default=2_000, help="rows timed with the guide's per-row pattern")
    parser.add_argument("--api-rows", type=int, default=2_000, help="rows of the simulated API run (threads)")
    parser.add_argument("--api-serial-rows", type=int, default=200, help="rows of the serial simulated API run")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of every measure; each one's best is kept")
    parser.add_argument("--llm-rows", type=int, default=2_000, help="requests to the rate-limited LLM stand-in")
    parser.add_argument("--llm-rate", type=float, default=100.0, help="the stand-in's rate limit (requests/s)")
    parser.add_argument("--cpu-items", type=int, default=1_500, help="items of the CPU-bound (~2 ms) predict")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["recording", "llm", "cpu", "scale"],
        choices=["recording", "llm", "cpu", "scale"],
        help="which measures to run (recording includes the simulated API)",
    )
    parser.add_argument("--scale-small", type=int, default=100_000, help="items of the smaller scale run")
    parser.add_argument("--scale-large", type=int, default=1_000_000, help="items of the larger scale run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    results: list[tuple] = []
    try:
        print(f"rendering the template into {work} ...", flush=True)
        project = render(work / "project")
        h = Harness(project, work)
        table = h.config.load_config().predictions_table

        # Warm-up: imports (xetrack, pandas) and first-call costs, on both sides.
        os.environ["PERF_ITEMS"] = "200"
        h.run("warmup.db", "w1")
        guide_pattern(h, 50, work / "guide-warmup.db", work / "guide-warmup-cache")

        repeat = args.repeat if "recording" in args.sections else 0
        rounds = [one_round(h, args, table, number) for number in range(repeat)]
        if rounds:
            results.extend(recording_rows(h, args, rounds))
            api_rows(h, args, results)
        if "llm" in args.sections:
            results.extend(rate_limited_llm(h, args.llm_rows, args.llm_rate))
        if "cpu" in args.sections:
            results.extend(cpu_processes(h, args.cpu_items))
        if "scale" in args.sections:
            results.extend(scale_rows(project, work, args.scale_small, args.scale_large))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'measure':<36} {'ratio':>10} {'target':>8}  met")
    failed = 0
    for name, ratio, target, *direction in results:
        if direction == ["max"]:  # a ceiling: memory, seconds, a growth ratio
            met = ratio <= target
            shown, goal = f"{ratio:,.2f}", f"<={target:g}"
        else:
            met = ratio >= target
            shown = f"{ratio:.0%}" if target <= 1 else f"{ratio:,.1f}x"
            goal = f"{target:.0%}" if target <= 1 else f"{target:g}x"
        failed += not met
        print(f"{name:<36} {shown:>10} {goal:>8}  {'yes' if met else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
