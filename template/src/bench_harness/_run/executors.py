"""Where predictions are computed: serial, threads, processes or a Dask cluster.

Template-owned. Workers only compute; the main process is the single writer (runner.py). So
every executor works with both engines, and nothing but the main process opens the database.

Each task is executed by `execute_task`: the row envelope (envelope.py) turns the call of
predict() into the recorded row (an exception into an error row, never a crash), and transient
errors are retried with exponential backoff and full jitter (honouring a server's Retry-After).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._core.errors import is_transient
from .envelope import Envelope

EXECUTORS = ("serial", "threads", "processes", "dask")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep U(0, min(max, base * 2**attempt))."""

    max_retries: int = 3
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(self.max_seconds, max(0.0, retry_after))
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2**attempt))


class Task(NamedTuple):
    """One prediction to compute: where its result goes, the item and its configuration.

    A tuple, so the runner can build 20,000 of them at C speed (`zip`) and pools pickle them cheaply.
    """

    index: int
    item: dict[str, Any]
    params: Any


def execute_task(envelope: Envelope | Callable, task: Task, policy: RetryPolicy) -> tuple[int, dict]:
    """Run predict() through its envelope with retries; returns (task index, recorded row). Never raises.

    A bare predict function is wrapped in a default envelope (ground truth from `label`, no segments).
    """
    if not isinstance(envelope, Envelope):
        envelope = Envelope(envelope)
    index, item, params = task
    attempt = 0
    while True:
        started = time.perf_counter()
        result, retry_after = envelope.call(item, params)
        elapsed = time.perf_counter() - started
        if result["error"] and is_transient(result["error_type"]) and attempt < policy.max_retries:
            time.sleep(policy.delay(attempt, retry_after))
            attempt += 1
            continue
        result["function_time"] = elapsed
        result["retry_count"] = attempt
        return index, result


def _execute_chunk(envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy) -> list[tuple[int, dict]]:
    return [execute_task(envelope, t, policy) for t in tasks]


def _chunks(tasks: Sequence[Task], size: int) -> Iterator[Sequence[Task]]:
    for start in range(0, len(tasks), size):
        yield tasks[start : start + size]


def run_serial(envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy, **_: Any) -> Iterator[tuple[int, dict]]:
    for task in tasks:
        yield execute_task(envelope, task, policy)


def _run_pool(
    pool: Executor, envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy, chunk: int, in_flight: int
) -> Iterator[tuple[int, dict]]:
    """Submit chunks with a bounded number in flight; yield results as they complete."""
    pending: set[Future] = set()
    chunks = _chunks(tasks, chunk)
    try:
        for part in chunks:
            pending.add(pool.submit(_execute_chunk, envelope, part, policy))
            if len(pending) >= in_flight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
    finally:
        for future in pending:
            future.cancel()


def run_threads(envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy, workers: int = 8, **_: Any):
    """I/O-bound work (API calls): `workers` is the concurrency limit."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict") as pool:
        yield from _run_pool(pool, envelope, tasks, policy, chunk=1, in_flight=workers * 2)


def run_processes(envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy, workers: int = 2, **_: Any):
    """CPU-bound work: chunks amortise the pickling between processes."""
    chunk = max(1, min(256, len(tasks) // (workers * 8) or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from _run_pool(pool, envelope, tasks, policy, chunk=chunk, in_flight=workers * 4)


def run_dask(
    envelope: Envelope,
    tasks: Sequence[Task],
    policy: RetryPolicy,
    workers: int = 2,
    scheduler: str | None = None,
    **_: Any,
) -> Iterator[tuple[int, dict]]:
    """A Dask cluster: `scheduler` is its address (tcp://host:8786); None starts a LocalCluster."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise SystemExit("The dask executor needs `dask[distributed]`: uv add 'dask[distributed]'") from error
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        chunk = max(1, min(256, len(tasks) // (workers * 8) or 1))
        futures = [client.submit(_execute_chunk, envelope, part, policy, pure=False) for part in _chunks(tasks, chunk)]
        for future in as_completed(futures):
            yield from future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def get_executor(name: str) -> Callable[..., Iterator[tuple[int, dict]]]:
    runners = {"serial": run_serial, "threads": run_threads, "processes": run_processes, "dask": run_dask}
    if name not in runners:
        raise SystemExit(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    return runners[name]
