"""Where predictions are computed: serial, threads, processes or a Dask cluster.

Template-owned. Workers only compute; the main process is the single writer (runner.py). So
every executor works with both engines, and nothing but the main process opens the database.

Each task is executed by `execute_task`: the row envelope (envelope.py) turns the call of
predict() into the recorded row (an exception into an error row, never a crash), and transient
errors are retried with exponential backoff and full jitter (honouring a server's Retry-After).
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._core.errors import is_transient
from .._storage import keys
from .envelope import Envelope
from .workercode import StaleCode, ensure_code

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


class CodeTarget(NamedTuple):
    """The predict a Dask worker must run: `module.attribute`, at the run's code version `expected`."""

    module: str
    attribute: str
    expected: str


class ChunkOutcome(NamedTuple):
    """A chunk's rows from one worker, or why that worker refused to compute them (`refused`)."""

    worker: str
    rows: list[tuple[int, dict]]
    refused: str | None = None


class StaleWorkerCodeError(SystemExit):
    """Dask workers could not run this run's predict code; their tasks were refused, not recorded."""


def code_target(predict: Callable, expected: str | None = None) -> CodeTarget | None:
    """Where workers find `predict` and the code version it must have; None when it has no module to check.

    `expected` defaults to keys.code_version of predict's module: the run's code version when
    predict is the user's predict.py (what the runner records rows under).
    """
    name = getattr(predict, "__module__", None)
    module = sys.modules.get(name or "")
    if module is None or name == "__main__":
        return None
    attribute = next((key for key, value in vars(module).items() if value is predict), None)
    if attribute is None:
        return None
    return CodeTarget(name, attribute, expected or keys.code_version(module))


def _execute_verified_chunk(
    envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy, target: CodeTarget | None
) -> ChunkOutcome:
    """On a worker: prove the code version of predict (reloading it when the file is the run's), then run the chunk.

    The envelope travels without its predict function (unpickling one imports the worker's copy
    of the module the ordinary way, whatever its version): it is resolved here, after the check.
    """
    from distributed import get_worker

    worker = get_worker().address
    if target is not None:
        try:
            module = ensure_code(target.module, target.expected)
        except StaleCode as error:
            return ChunkOutcome(worker, [], str(error))
        envelope = dataclasses.replace(envelope, predict=getattr(module, target.attribute))
    return ChunkOutcome(worker, _execute_chunk(envelope, tasks, policy))


def _warm_up_worker(target: CodeTarget | None) -> str | None:
    """On every worker, before any task: load the user's predict once; the refusal's reason, or None."""
    if target is None:
        return None
    try:
        ensure_code(target.module, target.expected)
    except StaleCode as error:
        return str(error)
    return None


def _refusal_message(refused: dict[str, str], count: int, total: int, target: CodeTarget | None) -> str:
    reasons = "; ".join(f"worker {worker}: {why}" for worker, why in sorted(refused.items()))
    code = target.expected if target is not None else "?"
    return (
        f"REFUSED {count} of {total} tasks: Dask workers could not run this run's predict code ({code}), "
        f"so nothing of theirs was recorded ({reasons}). Fix: restart the workers (stop `dask worker` and "
        "start it again in this checkout, or give them this commit's predict.py), then run the same command "
        "again: it resumes and computes only the refused tasks."
    )


def run_dask(
    envelope: Envelope,
    tasks: Sequence[Task],
    policy: RetryPolicy,
    workers: int = 2,
    scheduler: str | None = None,
    code_version: str | None = None,
    **_: Any,
) -> Iterator[tuple[int, dict]]:
    """A Dask cluster: `scheduler` is its address (tcp://host:8786); None starts a LocalCluster.

    Workers prove which code they ran (workercode.py): every chunk carries the run's code version
    of predict; a worker runs it only when the predict in its memory is that version (reloading
    predict.py when its file is), and refuses the chunk otherwise. Before the first task every
    worker loads predict once (a warm-up, off the clock of the tasks); tasks go only to workers
    that passed it, and a chunk refused later is tried once on a worker that proved the code.
    Refused tasks are never yielded (so never recorded): after the others, StaleWorkerCodeError
    says how many, why, and the fix.
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise SystemExit("The dask executor needs `dask[distributed]`: uv add 'dask[distributed]'") from error
    target = code_target(envelope.predict, code_version)
    shipped = envelope if target is None else dataclasses.replace(envelope, predict=None)
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        warm = client.run(_warm_up_worker, target)
        refused = {worker: why for worker, why in warm.items() if why is not None}
        allowed = [worker for worker, why in warm.items() if why is None]
        if refused and not allowed:
            raise StaleWorkerCodeError(_refusal_message(refused, len(tasks), len(tasks), target))
        restrict = allowed if refused else None  # else any worker, also one that joins later (it checks too)
        chunk = max(1, min(256, len(tasks) // (max(1, len(allowed) or workers) * 8) or 1))

        def submit(part: Sequence[Task], where: list[str] | None) -> Any:
            future = client.submit(_execute_verified_chunk, shipped, part, policy, target, pure=False, workers=where)
            parts[future.key] = part
            return future

        parts: dict[str, Sequence[Task]] = {}
        proven: set[str] = set()
        retried: set[str] = set()
        refused_tasks = 0
        pending = as_completed([submit(part, restrict) for part in _chunks(tasks, chunk)])
        for future in pending:
            outcome: ChunkOutcome = future.result()
            part = parts.pop(future.key)
            if outcome.refused is None:
                proven.add(outcome.worker)
                yield from outcome.rows
                continue
            refused[outcome.worker] = outcome.refused
            elsewhere = sorted(proven - set(refused))
            if elsewhere and future.key not in retried:  # once, on a worker that ran the run's code
                retry = submit(part, elsewhere)
                retried.add(retry.key)
                pending.add(retry)
            else:
                refused_tasks += len(part)
        if refused_tasks:
            raise StaleWorkerCodeError(_refusal_message(refused, refused_tasks, len(tasks), target))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def get_executor(name: str) -> Callable[..., Iterator[tuple[int, dict]]]:
    runners = {"serial": run_serial, "threads": run_threads, "processes": run_processes, "dask": run_dask}
    if name not in runners:
        raise SystemExit(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    return runners[name]
