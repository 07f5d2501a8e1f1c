"""Where predictions are computed: serial, threads, processes or a Dask cluster.

Template-owned. Workers only compute; the main process is the single writer (runner.py). So
every executor works with both engines, and nothing but the main process opens the database.

Each task is executed by `execute_task`: the row envelope (envelope.py) turns the call of
predict() into the recorded row (an exception into an error row, never a crash), and transient
errors are retried with exponential backoff and full jitter (honouring a server's Retry-After).

What keeps a run healthy when predict() misbehaves (benchmark.toml [run]):

* `task_timeout_seconds`: a task that has not produced its row after that long becomes a TIMEOUT
  error row and the run goes on. Serial and threads run predict() in daemon threads the main
  thread watches: a hung call is abandoned (its thread may stay blocked, but it never holds up
  the run, the rows or the interpreter's exit); nothing is injected into the user's code, as a
  signal would be. Processes are watched by the parent, which kills a hung worker and starts
  another.
* Stopping: SIGTERM and Ctrl-C reach the main thread (runner.py), which stops handing out tasks,
  records the finished rows and kills the worker processes. A worker process also exits when
  its parent dies (even by SIGKILL): none outlives its run.
* `adaptive_concurrency` (threads): an AIMD controller (`AdaptiveConcurrency`) keeps the number
  of calls in flight where the endpoint keeps up: more while calls succeed, fewer (and a pause
  for its Retry-After) on RATE_LIMIT or API_TIMEOUT, never more than `workers`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import islice
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_connections
from typing import Any, NamedTuple

from .._core.errors import API_TIMEOUT, RATE_LIMIT, TIMEOUT, UNKNOWN, BenchmarkError, is_transient
from .._storage import keys
from .envelope import Envelope
from .workercode import StaleCode, ensure_code

POLL_SECONDS = 0.25  # how often the main thread looks for hung tasks (and a worker for its parent)
RATE_LIMIT_RETRIES = 4  # under adaptive concurrency, a rate limit may be retried 4 x max_retries times


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


def resolve_workers(workers: int | None, default: int = 4) -> int:
    """`workers = 0` means the machine's cores; None means `default`."""
    if workers is None:
        return default
    return workers if workers > 0 else os.cpu_count() or 1


class AdaptiveConcurrency:
    """How many calls may be in flight at once: AIMD, between `minimum` and `maximum`.

    Like TCP's congestion window (and Inspect AI's adaptive connections): it starts low and
    doubles every round trip while calls succeed (slow start); after the first back-off it grows
    by one call per round trip (additive increase). RATE_LIMIT and API_TIMEOUT (or any answer
    carrying a Retry-After) multiply it by `decrease`, at most once per round trip (the calls
    already in flight answer the same overload), and a Retry-After pauses every new call until
    it has passed. Only each attempt's own outcome counts: a success after retries is one
    success, its rejections each a back-off signal. Thread-safe; `acquire` blocks.
    """

    BACKOFF = frozenset({RATE_LIMIT, API_TIMEOUT})

    def __init__(self, maximum: int, start: int = 4, minimum: int = 1, decrease: float = 0.5):
        self.maximum, self.minimum, self.decrease = max(1, maximum), max(1, minimum), decrease
        self.limit = float(min(self.maximum, max(self.minimum, start)))
        self.threshold = float(self.maximum)  # slow start below it
        self.holders: set[int] = set()  # the threads in a call
        self.paused_until = 0.0
        self.last_decrease = -1e9
        self.round_trip = 0.0  # smoothed seconds of a successful call
        self.successes = self.backoffs = self.decreases = 0
        self.peak = int(self.limit)
        self._condition = threading.Condition()

    def acquire(self) -> None:
        """Wait for a free slot (and for a Retry-After pause to pass)."""
        with self._condition:
            while True:
                wait = self.paused_until - time.monotonic()
                if wait <= 0 and len(self.holders) < int(self.limit):
                    self.holders.add(threading.get_ident())
                    return
                self._condition.wait(wait if wait > 0 else None)

    def release(self, error_type: str | None, retry_after: float | None, seconds: float) -> None:
        """Give the slot back with the attempt's outcome (None: success)."""
        with self._condition:
            if threading.get_ident() not in self.holders:
                return  # abandoned (timed out): its slot was given back already
            self.holders.discard(threading.get_ident())
            now = time.monotonic()
            if error_type is None:
                self.successes += 1
                self.round_trip = seconds if not self.round_trip else 0.8 * self.round_trip + 0.2 * seconds
                step = 1.0 if self.limit < self.threshold else 1.0 / self.limit
                self.limit = min(float(self.maximum), self.limit + step)
                self.peak = max(self.peak, int(self.limit))
            elif error_type in self.BACKOFF or retry_after is not None:
                self.backoffs += 1
                if retry_after:
                    self.paused_until = max(self.paused_until, now + retry_after)
                if now - self.last_decrease >= max(self.round_trip, retry_after or 0.0):
                    self.limit = max(float(self.minimum), self.limit * self.decrease)
                    self.threshold = self.limit
                    self.last_decrease = now
                    self.decreases += 1
            self._condition.notify_all()

    def abandon(self, thread: int) -> None:
        """A timed-out call's slot goes back: the hung call no longer counts as in flight."""
        with self._condition:
            self.holders.discard(thread)
            self._condition.notify_all()


def execute_task(
    envelope: Envelope | Callable, task: Task, policy: RetryPolicy, gate: AdaptiveConcurrency | None = None
) -> tuple[int, dict]:
    """Run predict() through its envelope with retries; returns (task index, recorded row). Never raises.

    A bare predict function is wrapped in a default envelope (ground truth from `label`, no segments).
    With a `gate`, each attempt waits for a slot and reports its outcome (adaptive concurrency);
    the backoff sleeps hold no slot.
    """
    if not isinstance(envelope, Envelope):
        envelope = Envelope(envelope)
    index, item, params = task
    attempt = 0
    while True:
        started = time.perf_counter()
        if gate is None:
            result, retry_after = envelope.call(item, params)
        else:
            result, retry_after = _gated_call(gate, envelope, item, params)
        elapsed = time.perf_counter() - started
        if result["error"] and is_transient(result["error_type"]) and attempt < _retries(policy, result, gate):
            time.sleep(policy.delay(attempt, retry_after))
            attempt += 1
            continue
        result["function_time"] = elapsed
        result["retry_count"] = attempt
        return index, result


def _retries(policy: RetryPolicy, row: dict, gate: AdaptiveConcurrency | None) -> int:
    """How many retries the row's error allows: under adaptive concurrency a rate limit is the
    controller's signal while it finds the endpoint's limit, so it has RATE_LIMIT_RETRIES times as many."""
    if gate is not None and row["error_type"] == RATE_LIMIT:
        return policy.max_retries * RATE_LIMIT_RETRIES
    return policy.max_retries


def _gated_call(gate: AdaptiveConcurrency, envelope: Envelope, item: dict, params: Any) -> tuple[dict, float | None]:
    """One attempt inside a slot of the adaptive gate, its outcome reported when it returns."""
    gate.acquire()
    started = time.perf_counter()
    outcome: str | None = UNKNOWN  # a BaseException (SystemExit in predict) frees the slot too, neutrally
    retry_after = None
    try:
        result, retry_after = envelope.call(item, params)
        outcome = (result["error_type"] or UNKNOWN) if result["error"] else None
        return result, retry_after
    finally:
        gate.release(outcome, retry_after, time.perf_counter() - started)


def failure_row(envelope: Envelope | Callable, task: Task, message: str, error_type: str, seconds: float = 0.0):
    """(index, error row) for a task the harness gave up on: a timeout, a worker that died."""
    if not isinstance(envelope, Envelope):
        envelope = Envelope(envelope)
    index, item, params = task
    row = envelope.error_row(item, params, BenchmarkError(message, error_type), seconds)
    row["function_time"] = seconds
    row["retry_count"] = 0
    return index, row


def timeout_row(envelope: Envelope | Callable, task: Task, seconds: float) -> tuple[int, dict]:
    message = f"predict() did not return within {seconds:g}s (benchmark.toml [run] task_timeout_seconds)"
    return failure_row(envelope, task, message, TIMEOUT, seconds)


def _execute_chunk(envelope: Envelope, tasks: Sequence[Task], policy: RetryPolicy) -> list[tuple[int, dict]]:
    return [execute_task(envelope, t, policy) for t in tasks]


def _chunks(tasks: Iterable[Task], size: int) -> Iterator[list[Task]]:
    """Lists of at most `size` tasks, pulled from `tasks` only as they are asked for."""
    iterator = iter(tasks)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _size_hint(tasks: Iterable[Task], expected: int | None) -> int:
    """How many tasks there are (len() of a list), else the runner's estimate, else a large number.

    Executors take any iterable (the runner hands out a streamed run's tasks lazily, chunk by chunk):
    the hint only sizes the chunks sent to processes and Dask workers.
    """
    if isinstance(tasks, Sized):
        return len(tasks)
    return expected if expected else 1_000_000


# -- serial and threads: daemon threads the main thread watches --------------------------------------

_FINISHED = object()  # a worker thread's last message: no task left
_HUNGRY = object()  # a worker thread saw the inbox running low: the main thread refills it


class _Raised(NamedTuple):
    """predict() raised a BaseException (KeyboardInterrupt, SystemExit): re-raised in the main thread."""

    error: BaseException


class _Slot:
    """What one worker thread is computing and since when (the timeout's clock), and its rows not yet handed over."""

    __slots__ = ("task", "started", "abandoned", "done", "handed", "thread")

    def __init__(self) -> None:
        self.task: Task | None = None
        self.started = 0.0
        self.abandoned = False
        self.done: list[tuple[int, dict]] = []
        self.handed = time.monotonic()
        self.thread = 0


class _ThreadWorkers:
    """Daemon threads taking tasks from an inbox and putting rows on one queue.

    Daemon threads: one blocked forever in a hung predict() never keeps the process alive, and
    the main thread stays free to time it out, record rows and answer SIGTERM or Ctrl-C. The main
    thread alone pulls the task iterator (`refill`): a streamed run plans its next chunk (database
    look-ups) when it is pulled, and the database belongs to the main thread. A worker that sees the
    inbox running low asks for more through the rows queue, so the main thread wakes up at once.
    """

    def __init__(
        self,
        envelope: Envelope,
        tasks: Iterable[Task],
        policy: RetryPolicy,
        gate: AdaptiveConcurrency | None,
        depth: int = 64,
    ) -> None:
        self.envelope, self.policy, self.gate = envelope, policy, gate
        self.source = iter(tasks)
        self.exhausted = False
        self.depth = depth  # tasks queued ahead of the threads
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.rows: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.slots: list[_Slot] = []
        self.hungry = False

    def refill(self) -> None:
        """Top the inbox up to `depth` tasks from the iterator (main thread); a stop for each thread at its end."""
        self.hungry = False
        missing = self.depth - self.inbox.qsize()
        while missing > 0 and not self.exhausted:
            task = next(self.source, None)
            if task is None:
                self.exhausted = True
                for _ in range(len(self.slots)):
                    self.inbox.put(None)
                break
            self.inbox.put(task)
            missing -= 1

    def start(self) -> None:
        slot = _Slot()
        self.slots.append(slot)
        if self.exhausted:
            self.inbox.put(None)  # a thread started after the end: it stops at once
        threading.Thread(target=self._work, args=(slot,), name="predict", daemon=True).start()

    def _work(self, slot: _Slot) -> None:
        slot.thread = threading.get_ident()
        low = self.depth // 2
        while not self.stopping.is_set():
            task = self.inbox.get()
            if task is None:
                break
            if not self.hungry and not self.exhausted and self.inbox.qsize() < low:
                self.hungry = True
                self.rows.put(_HUNGRY)
            slot.started = time.monotonic()  # before the task: `overdue` never pairs a new task with an old start
            slot.task = task
            try:
                row = execute_task(self.envelope, task, self.policy, self.gate)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit from predict(): the run stops, as inline
                with self.lock:
                    if not slot.abandoned:
                        self.slots.remove(slot)
                        self.rows.put(slot.done)
                        self.rows.put(_Raised(exc))
                return
            with self.lock:  # the main thread abandons a slot under the same lock: never both a row and a timeout
                if slot.abandoned:
                    return
                slot.task = None
                slot.done.append(row)
                now = time.monotonic()
                # Rows go over in lists (a queue hand-off per row would cost a fast predict a third of
                # its speed), promptly: after a slow call, every 20 ms, every 1,000 rows.
                if now - slot.started > 0.002 or now - slot.handed > 0.02 or len(slot.done) >= 1000:
                    self.rows.put(slot.done)
                    slot.done, slot.handed = [], now
        with self.lock:
            if not slot.abandoned:
                self.slots.remove(slot)
                self.rows.put(slot.done)
                self.rows.put(_FINISHED)

    def held(self) -> list[tuple[int, dict]]:
        """The finished rows the threads hold (one may be stuck in a hung call after fast ones)."""
        rows: list[tuple[int, dict]] = []
        with self.lock:
            for slot in self.slots:
                rows.extend(slot.done)
                slot.done, slot.handed = [], time.monotonic()
        return rows

    def overdue(self, timeout: float) -> tuple[list[Task], list[tuple[int, dict]]]:
        """Abandon the slots whose task has run longer than `timeout`: their tasks, and the rows they held."""
        now = time.monotonic()
        late: list[Task] = []
        rows: list[tuple[int, dict]] = []
        with self.lock:
            for slot in list(self.slots):
                if slot.task is not None and now - slot.started > timeout:
                    slot.abandoned = True
                    self.slots.remove(slot)
                    late.append(slot.task)
                    rows.extend(slot.done)
                    if self.gate is not None:
                        self.gate.abandon(slot.thread)
        return late, rows


def _run_in_threads(
    envelope: Envelope,
    tasks: Iterable[Task],
    policy: RetryPolicy,
    workers: int,
    timeout: float,
    gate: AdaptiveConcurrency | None = None,
) -> Iterator[tuple[int, dict]]:
    """Rows as they complete; a task running longer than `timeout` (> 0) becomes a TIMEOUT row.

    The threads, their inbox and the adaptive gate live as long as the iterator of tasks: a streamed
    run's chunks all go through the same pool.
    """
    pool = _ThreadWorkers(envelope, tasks, policy, gate, depth=max(64, 4 * workers))
    for _ in range(workers):
        pool.start()
    pool.refill()
    running = workers
    poll = min(POLL_SECONDS, timeout / 4) if timeout else POLL_SECONDS
    next_check = time.monotonic() + poll
    try:
        while running:
            try:
                rows = pool.rows.get(timeout=poll)
            except queue.Empty:  # idle: take the rows a thread holds while it is in a long call
                rows = pool.held()
            except KeyboardInterrupt:  # SIGTERM or Ctrl-C: what is finished is recorded, then the run stops
                yield from pool.held()
                raise
            if rows is _FINISHED:
                running -= 1
            elif rows is _HUNGRY:
                pass
            elif isinstance(rows, _Raised):
                raise rows.error
            elif rows:
                yield from rows
            if not pool.exhausted:
                pool.refill()
            if timeout and time.monotonic() >= next_check:
                next_check = time.monotonic() + poll
                late, held = pool.overdue(timeout)
                yield from held
                for task in late:
                    yield timeout_row(envelope, task, timeout)
                    pool.start()  # a fresh thread carries on with the remaining tasks
    finally:
        pool.stopping.set()  # threads finish their call and stop; a hung one is a daemon, left behind
        for _ in range(len(pool.slots)):
            pool.inbox.put(None)  # wake the idle ones


class _TaskTimeout(BaseException):
    """Raised in the main thread by the SIGALRM handler when the current task has run past its timeout.

    A BaseException, so predict()'s own `except Exception` does not swallow it.
    """


class _AlarmWatch:
    """A serial run's timeout without a thread: a repeating SIGALRM checks the task in progress.

    One interval timer for the whole run (no system call per task): every `poll` seconds the handler
    looks at when the current task started and, past `timeout`, raises _TaskTimeout in the main
    thread, inside predict(): a call blocked in I/O or sleep is interrupted, the task becomes a
    TIMEOUT row and the run goes on. Per task it costs one clock read. Used on POSIX in the main
    thread when nothing else handles SIGALRM; elsewhere serial runs use the watched thread.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = 0.0  # 0: no task in progress
        self.poll = min(POLL_SECONDS, timeout / 4)
        self.previous = signal.signal(signal.SIGALRM, self._check)
        signal.setitimer(signal.ITIMER_REAL, self.poll, self.poll)

    @staticmethod
    def usable() -> bool:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return False
        return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)

    def _check(self, signum: int, frame: object) -> None:
        started = self.started
        if started and time.monotonic() - started > self.timeout:
            self.started = 0.0  # once per task: a handler that swallowed it is not interrupted again
            raise _TaskTimeout

    def close(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def _run_serial_alarm(
    envelope: Envelope, tasks: Iterable[Task], policy: RetryPolicy, timeout: float
) -> Iterator[tuple[int, dict]]:
    watch = _AlarmWatch(timeout)
    try:
        for task in tasks:
            try:
                watch.started = time.monotonic()
                row = execute_task(envelope, task, policy)
                watch.started = 0.0
            except _TaskTimeout:
                watch.started = 0.0
                row = timeout_row(envelope, task, timeout)
            yield row
    finally:
        watch.close()


def run_serial(
    envelope: Envelope, tasks: Iterable[Task], policy: RetryPolicy, timeout: float = 0.0, **_: Any
) -> Iterator[tuple[int, dict]]:
    """One task at a time, in the main thread. With a timeout, a SIGALRM timer watches each call (POSIX,
    main thread); elsewhere predict() runs in a watched thread (one call at a time still)."""
    if timeout:
        if _AlarmWatch.usable():
            yield from _run_serial_alarm(envelope, tasks, policy, timeout)
        else:
            yield from _run_in_threads(envelope, tasks, policy, 1, timeout)
        return
    for task in tasks:
        yield execute_task(envelope, task, policy)


def run_threads(
    envelope: Envelope,
    tasks: Iterable[Task],
    policy: RetryPolicy,
    workers: int = 8,
    timeout: float = 0.0,
    adaptive: bool = True,
    **_: Any,
) -> Iterator[tuple[int, dict]]:
    """I/O-bound work (API calls): `workers` threads; with `adaptive`, an AIMD gate decides how many call at once."""
    workers = resolve_workers(workers, 8)
    gate = AdaptiveConcurrency(workers) if adaptive else None
    yield from _run_in_threads(envelope, tasks, policy, workers, timeout, gate)


# -- processes: worker processes the parent watches, kills when hung, and that die with it -----------


def _die_with_parent(parent: int) -> None:
    """Exit when the parent process is gone, even if it was SIGKILLed (no orphan blocked forever)."""
    with contextlib.suppress(Exception):  # Linux: the kernel kills us when the parent dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:  # everywhere else (and if the parent died before prctl): poll
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _process_main(connection: Connection, envelope: Envelope, policy: RetryPolicy, parent: int) -> None:
    """A worker process: receive chunks of tasks, send back rows at least every 50 ms.

    Ctrl-C and SIGTERM are the parent's to handle (it kills its workers when it stops); a thread
    reads the chunks as they come, so the parent's sends never wait for this process's sends.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent)
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def receive() -> None:
        with contextlib.suppress(EOFError, OSError):
            while (chunk := connection.recv()) is not None:
                inbox.put(chunk)
        inbox.put(None)

    threading.Thread(target=receive, name="receive", daemon=True).start()
    while (chunk := inbox.get()) is not None:
        done: list[tuple[int, dict]] = []
        sent = time.monotonic()
        for task in chunk:
            done.append(execute_task(envelope, task, policy))
            if time.monotonic() - sent >= 0.05:
                _send_rows(connection, envelope, chunk, done)
                done, sent = [], time.monotonic()
        _send_rows(connection, envelope, chunk, done)


def _send_rows(connection: Connection, envelope: Envelope, chunk: Sequence[Task], rows: list[tuple[int, dict]]) -> None:
    try:
        connection.send(rows)
    except Exception:  # noqa: BLE001 - a value that does not pickle: that row becomes an error, not the run
        by_index = {task.index: task for task in chunk}
        connection.send([_picklable(envelope, by_index[index], row) for index, row in rows])


def _picklable(envelope: Envelope, task: Task, row: dict) -> tuple[int, dict]:
    import pickle

    try:
        pickle.dumps(row)
        return task.index, row
    except Exception as exc:  # noqa: BLE001
        return failure_row(envelope, task, f"predict()'s row cannot be sent back from a process: {exc}", UNKNOWN)


class _ProcessWorker:
    """One worker process, its pipe, and the tasks sent to it that have no row yet (in order)."""

    def __init__(self, context: Any, envelope: Envelope, policy: RetryPolicy):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_process_main, args=(child, envelope, policy, os.getpid()), name="bench-worker"
        )  # not a daemon: predict() may start processes of its own; the run kills it, or it exits with the run
        self.process.start()
        child.close()
        self.pending: deque[Task] = deque()
        self.since = time.monotonic()  # when it last delivered rows, or got work while idle

    def send(self, chunk: Sequence[Task]) -> None:
        if not self.pending:
            self.since = time.monotonic()
        self.pending.extend(chunk)
        try:
            self.connection.send(list(chunk))
        except OSError:  # it died after its last rows: its end of the pipe reads EOF next, and it is replaced
            pass

    def receive(self) -> list[tuple[int, dict]]:
        rows = self.connection.recv()
        for _ in rows:
            self.pending.popleft()
        self.since = time.monotonic()
        return rows

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(1)
        self.connection.close()


def run_processes(
    envelope: Envelope,
    tasks: Iterable[Task],
    policy: RetryPolicy,
    workers: int = 0,
    timeout: float = 0.0,
    expected: int | None = None,
    **_: Any,
) -> Iterator[tuple[int, dict]]:
    """CPU-bound work: `workers` processes (0: one per core); chunks amortise the pickling.

    The parent keeps two chunks queued per worker, pulling them from `tasks` as it goes (a streamed
    run's chunks all reach the same processes); a worker whose task runs past `timeout` is killed
    (its task becomes a TIMEOUT row, the rest of its chunks go to a fresh worker), and a worker that
    dies (a crash in native code) costs its current task an error row.
    """
    workers = resolve_workers(workers, 0)
    chunk = max(1, min(64, _size_hint(tasks, expected) // (workers * 8) or 1))
    source = _chunks(tasks, chunk)
    backlog: deque[Sequence[Task]] = deque()  # chunks given back by a replaced worker, sent first
    first = list(islice(source, workers))
    backlog.extend(first)
    context = multiprocessing.get_context()
    pool = [_ProcessWorker(context, envelope, policy) for _ in range(min(workers, len(first)))]

    def next_chunk() -> Sequence[Task] | None:
        if backlog:
            return backlog.popleft()
        return next(source, None)

    def feed(worker: _ProcessWorker) -> None:
        while len(worker.pending) < 2 * chunk:
            part = next_chunk()
            if part is None:
                return
            worker.send(part)

    def replace(worker: _ProcessWorker) -> None:
        worker.kill()
        pool.remove(worker)
        if worker.pending:
            backlog.appendleft(list(worker.pending))
        part = next_chunk()
        if part is not None:
            backlog.appendleft(part)
            pool.append(_ProcessWorker(context, envelope, policy))
            feed(pool[-1])

    poll = min(POLL_SECONDS, timeout / 4) if timeout else POLL_SECONDS
    try:
        for worker in pool:
            feed(worker)
        while any(worker.pending for worker in pool):
            by_connection = {worker.connection: worker for worker in pool if worker.pending}
            for connection in wait_for_connections(list(by_connection), timeout=poll):
                worker = by_connection[connection]
                try:
                    yield from worker.receive()
                except (EOFError, OSError):
                    worker.process.join(1)
                    code = worker.process.exitcode
                    task = worker.pending.popleft()
                    yield failure_row(envelope, task, f"the worker process died (exit code {code})", UNKNOWN)
                    replace(worker)
                    continue
                feed(worker)
            if timeout:
                now = time.monotonic()
                for worker in [w for w in pool if w.pending and now - w.since > timeout]:
                    yield timeout_row(envelope, worker.pending.popleft(), timeout)
                    replace(worker)
    finally:
        for worker in pool:
            with contextlib.suppress(Exception):
                worker.connection.send(None)
        deadline = time.monotonic() + 1.0
        for worker in pool:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()


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
    tasks: Iterable[Task],
    policy: RetryPolicy,
    workers: int = 2,
    scheduler: str | None = None,
    code_version: str | None = None,
    expected: int | None = None,
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
        hint = _size_hint(tasks, expected)
        if refused and not allowed:
            total = sum(1 for _ in tasks)
            raise StaleWorkerCodeError(_refusal_message(refused, total, total, target))
        restrict = allowed if refused else None  # else any worker, also one that joins later (it checks too)
        chunk = max(1, min(256, hint // (max(1, len(allowed) or workers) * 8) or 1))
        # Chunks in flight at once: enough to keep every worker busy, pulled from `tasks` as chunks
        # complete (a streamed run's tasks are planned lazily; the scheduler never holds them all).
        in_flight = 4 * max(1, len(allowed) or workers)
        source = _chunks(tasks, chunk)
        submitted = 0

        def submit(part: Sequence[Task], where: list[str] | None) -> Any:
            future = client.submit(_execute_verified_chunk, shipped, part, policy, target, pure=False, workers=where)
            parts[future.key] = part
            return future

        parts: dict[str, Sequence[Task]] = {}
        proven: set[str] = set()
        retried: set[str] = set()
        refused_tasks = 0

        def submit_next() -> Any:
            nonlocal submitted
            part = next(source, None)
            if part is None:
                return None
            submitted += len(part)
            return submit(part, restrict)

        pending = as_completed([future for _ in range(in_flight) if (future := submit_next()) is not None])
        for future in pending:
            outcome: ChunkOutcome = future.result()
            part = parts.pop(future.key)
            following = submit_next()
            if following is not None:
                pending.add(following)
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
            raise StaleWorkerCodeError(_refusal_message(refused, refused_tasks, submitted, target))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# The executors `--executor` and benchmark.toml's [run] executor accept: a new one is a function here.
EXECUTORS: dict[str, Callable[..., Iterator[tuple[int, dict]]]] = {
    "serial": run_serial,
    "threads": run_threads,
    "processes": run_processes,
    "dask": run_dask,
}


def get_executor(name: str) -> Callable[..., Iterator[tuple[int, dict]]]:
    if name not in EXECUTORS:
        raise SystemExit(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]
