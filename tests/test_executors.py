"""Executors under misbehaving predict() calls and signals, on the toy benchmark (tests/toy.py).

A hung predict becomes a TIMEOUT row after [run] task_timeout_seconds and the run goes on, with
every executor; a worker process that dies costs one row; SIGTERM and Ctrl-C stop a real
`python -m bench_harness run` within seconds with the finished rows saved; a SIGKILLed run leaves
no worker process behind. Adaptive concurrency (threads) grows while calls succeed, backs off on
rate limits, and keeps a limited endpoint free of failed rows where a fixed pool fails some.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import toy

HUNG_PREDICT = '''
"""Toy predict that hangs (after leaving a marker file) on the inputs in HANG; exits the process on DIE."""

import os
import time
from pathlib import Path

PREDICT_VERSION = None
HANG = {hang}
DIE = {die}


def predict(item, params):
    if item["input_id"] in HANG:
        root = Path(os.environ["BENCH_ROOT"])
        (root / f"hung-{{item['input_id']}}-{{params.model_name}}-{{os.getpid()}}").write_text("")
        time.sleep(3600)
    if item["input_id"] in DIE:
        os._exit(3)
    value = item["x"] % 2 if params.model_name == "parity" else 0
    return {{"prediction": value, "raw_response": str(value)}}
'''

TASKS = len(toy.sample_items()) * 2  # 12 items x 2 configurations


def hung_project(root: Path, hang: set[int], die: set[int] = frozenset(), **run: object) -> Path:
    """The toy whose predict hangs on `hang` (and dies on `die`), with [run] settings replaced."""
    toy.write_project(
        root, files={"predict": HUNG_PREDICT.format(hang=sorted(hang) or "set()", die=sorted(die) or "set()")}
    )
    config = root / "benchmark.toml"
    text = config.read_text()
    for key, value in run.items():
        line = f"{key} = {json.dumps(value)}"
        text, found = re.subn(rf"(?m)^{key} = .*$", line, text)
        text = text if found else text.replace("[run]\n", f"[run]\n{line}\n", 1)
    config.write_text(text)
    return root


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT input_id, params_model_name, error_type, error FROM predictions").fetchall()


def run_in_process(root: Path, monkeypatch: pytest.MonkeyPatch, executor: str, timeout: float):
    for _ in toy.activate(root, monkeypatch):
        from bench_harness._core.config import load_config
        from bench_harness._run import runner

        cfg = load_config()
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, task_timeout_seconds=timeout, workers=2))
        started = time.monotonic()
        summary = runner.run(cfg, runner.RunOptions(experiment_version="t1", executor=executor, show_progress=False))
        return summary, time.monotonic() - started, rows(cfg.db_path)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_a_hung_predict_becomes_a_timeout_row_and_the_run_goes_on(
    executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hung_project(tmp_path / "toy", hang={3})
    summary, seconds, recorded = run_in_process(root, monkeypatch, executor, timeout=0.5)
    assert len(recorded) == TASKS and summary.computed == TASKS
    failed = {(str(iid), model): (kind, error) for iid, model, kind, error in recorded if kind}
    assert set(failed) == {("3", "parity"), ("3", "always_even")}
    assert {kind for kind, _ in failed.values()} == {"TIMEOUT"}
    assert all("task_timeout_seconds" in error for _, error in failed.values())
    assert seconds < 8  # two timeouts of 0.5 s (serial: one after the other), not an hour
    if executor == "processes":
        assert not [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"]


def test_a_worker_process_that_dies_costs_its_task_an_error_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hung_project(tmp_path / "toy", hang=set(), die={5})
    summary, _, recorded = run_in_process(root, monkeypatch, "processes", timeout=30)
    assert len(recorded) == TASKS
    failed = [(str(iid), kind, error) for iid, _, kind, error in recorded if kind]
    assert [(iid, kind) for iid, kind, _ in failed] == [("5", "UNKNOWN")] * 2
    assert all("worker process died (exit code 3)" in error for _, _, error in failed)


def test_the_timeout_setting_is_read_from_benchmark_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = hung_project(tmp_path / "toy", hang=set(), task_timeout_seconds=7.5, adaptive_concurrency=False)
    for _ in toy.activate(root, monkeypatch):
        from bench_harness._core.config import load_config

        run = load_config().run
        assert (run.task_timeout_seconds, run.adaptive_concurrency) == (7.5, False)


def test_workers_zero_means_one_per_core(toy: Path) -> None:
    from bench_harness._run.executors import resolve_workers

    assert resolve_workers(0) == os.cpu_count()
    assert resolve_workers(3) == 3 and resolve_workers(None, 8) == 8


def test_multiprocessing_renders_workers_zero(rendered_static) -> None:
    import tomllib

    run = tomllib.loads((rendered_static({"multiprocessing": True}) / "benchmark.toml").read_text())["run"]
    assert (run["executor"], run["workers"], run["task_timeout_seconds"]) == ("processes", 0, 600)


# -- adaptive concurrency ---------------------------------------------------------------------------


def test_the_adaptive_limit_grows_on_success_and_halves_on_a_rate_limit(toy: Path) -> None:
    from bench_harness._run.executors import AdaptiveConcurrency

    gate = AdaptiveConcurrency(maximum=10, start=2)
    for _ in range(50):
        gate.acquire()
        gate.release(None, None, 0.01)
    assert gate.limit == 10  # slow start up to the maximum, never above it
    gate.acquire()
    gate.release("RATE_LIMIT", None, 0.01)
    assert gate.limit == 5
    gate.acquire()
    gate.release("API_TIMEOUT", None, 0.01)
    assert gate.limit == 5  # one decrease per round trip: calls in flight answer the same overload
    time.sleep(0.02)
    gate.acquire()
    gate.release("API_TIMEOUT", None, 0.01)
    assert gate.limit == 2.5
    gate.acquire()
    gate.release("INVALID_VALUE", None, 0.01)  # the item's fault, not the endpoint's load
    assert gate.limit == 2.5
    for _ in range(5):
        gate.acquire()
        gate.release(None, None, 0.01)
    assert 2.5 < gate.limit < 5  # additive now: about one per round trip's worth of successes


def test_a_retry_after_pauses_every_new_call(toy: Path) -> None:
    from bench_harness._run.executors import AdaptiveConcurrency

    gate = AdaptiveConcurrency(maximum=4)
    gate.acquire()
    gate.release("RATE_LIMIT", 0.3, 0.01)
    started = time.monotonic()
    gate.acquire()
    assert time.monotonic() - started >= 0.25


class LimitedEndpoint:
    """A predict against an endpoint that answers 429 (RATE_LIMIT, Retry-After 10 ms) above 3 calls at once."""

    def __init__(self, capacity: int = 3):
        self.capacity, self.lock = capacity, threading.Lock()
        self.in_flight = self.peak = self.rejected = 0

    def __call__(self, item: dict, params: object) -> dict:
        from bench_harness import RATE_LIMIT, BenchmarkError

        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            over = self.in_flight > self.capacity
            self.rejected += over
        try:
            if over:
                raise BenchmarkError("429 too many requests", RATE_LIMIT, retry_after=0.01)
            time.sleep(0.01)
            return {"prediction": 1, "raw_response": "ok"}
        finally:
            with self.lock:
                self.in_flight -= 1


def test_adaptive_threads_find_a_limited_endpoints_capacity(toy: Path) -> None:
    """16 threads against room for 3: adaptive, no row fails; fixed, rows fail after their retries."""
    from bench_harness._run.envelope import Envelope
    from bench_harness._run.executors import RetryPolicy, Task, run_threads

    tasks = [Task(i, {"input_id": i, "label": 1}, None) for i in range(300)]
    policy = RetryPolicy(max_retries=2, base_seconds=0.0, max_seconds=0.05)
    outcomes = {}
    for adaptive in (True, False):
        endpoint = LimitedEndpoint()
        results = list(run_threads(Envelope(endpoint), tasks, policy, workers=16, timeout=30, adaptive=adaptive))
        assert len(results) == 300 and endpoint.peak <= 16
        outcomes[adaptive] = (sum(1 for _, row in results if row["error"]), endpoint.rejected)
    (failed, rejected), (fixed_failed, fixed_rejected) = outcomes[True], outcomes[False]
    assert failed == 0 and fixed_failed > 0
    assert rejected < fixed_rejected / 2


# -- signals: a real `python -m bench_harness run` ---------------------------------------------------


def start_run(root: Path, executor: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "PYTEST_"))}
    env.update(BENCH_ROOT=str(root), PYTHONPATH=os.pathsep.join([str(toy.HARNESS_SRC), str(root / "src")]))
    command = [sys.executable, "-m", "bench_harness", "run", "--experiment-version", "t1", "--quiet"]
    command += ["--executor", executor, "--workers", "2"]
    return subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )


def _sigint_as_in_a_terminal() -> None:
    """SIGINT at its default, as a terminal's command gets it. A suite started in the background by a
    shell without job control (`pytest &` in a script, some CI runners) inherits SIGINT *ignored*, and
    Python then installs no KeyboardInterrupt handler: Ctrl-C would not reach the run under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_hangs(root: Path, process: subprocess.Popen, count: int, seconds: float = 60) -> list[Path]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        markers = list(root.glob("hung-*"))
        if len(markers) >= count:
            return markers
        if process.poll() is not None:
            pytest.fail(f"the run ended early: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"predict never hung: {process.communicate()}")


def children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(processes: list[psutil.Process], seconds: float = 5.0) -> bool:
    """True when all of `processes` exited within `seconds` (any left are killed: a failing test leaves none)."""
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    left = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    for process in left:
        process.kill()
    return not left


# (executor, signal, to the whole process group as a terminal's Ctrl-C is)
STOPS = [
    ("serial", signal.SIGTERM, False),
    ("threads", signal.SIGTERM, False),
    ("threads", signal.SIGINT, True),
    ("processes", signal.SIGTERM, False),
    ("processes", signal.SIGINT, True),
]


@pytest.mark.parametrize(("executor", "signum", "group"), STOPS, ids=[f"{e}-{s.name}" for e, s, _ in STOPS])
def test_a_signal_stops_a_hung_run_within_seconds_and_keeps_the_finished_rows(
    tmp_path: Path, executor: str, signum: signal.Signals, group: bool
) -> None:
    # Inputs 0..5 finish in the first configuration; then every worker hangs on 6 and 7 (serial: on 6).
    root = hung_project(tmp_path / "toy", hang={6, 7, 8, 9, 10, 11}, write_interval_seconds=3600.0)
    process = start_run(root, executor)
    wait_for_hangs(root, process, 1 if executor == "serial" else 2)
    workers = children_of(process.pid)
    time.sleep(0.3)  # the main thread has received the finished rows (processes: within 50 ms)
    os.killpg(process.pid, signum) if group else process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{signum.name} did not stop the {executor} run within 10 s")
    assert gone(workers), "a worker process outlived its run"
    assert process.returncode == 130 and b"interrupted; finished rows are recorded" in stderr, stderr[-2000:]
    recorded = rows(root / "benchmark.db")
    assert sorted(int(iid) for iid, model, kind, _ in recorded if model == "parity" and not kind) == list(range(6))


def test_a_sigkilled_processes_run_leaves_no_worker_behind(tmp_path: Path) -> None:
    root = hung_project(tmp_path / "toy", hang={6, 7, 8, 9, 10, 11})
    process = start_run(root, "processes")
    wait_for_hangs(root, process, 2)
    workers = children_of(process.pid)
    assert workers
    process.kill()
    process.wait(5)
    assert gone(workers), "worker processes outlived their SIGKILLed parent"
