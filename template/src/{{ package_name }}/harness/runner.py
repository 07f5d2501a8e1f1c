"""Run a benchmark: every (input, configuration) exactly once, resumable, cached, recorded in batches.

Template-owned. For each run:

1. expand the grid of configurations over the items, and key every task (keys.py);
2. skip tasks this experiment version already recorded (resume after a crash or a kill);
3. log cache hits from earlier runs in one SQL statement (no predict() call);
4. compute the rest with the chosen executor, and record the results from this process only,
   in batches from a writer thread (a kill loses the batches not yet written, at most three,
   which the next run computes again);
5. stop early when the error rate passes the configured threshold.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from . import env, keys
from .config import BenchConfig
from .executors import RetryPolicy, Task, get_executor
from .monitor import SystemMonitor
from .progress import Progress
from .store import Store, history_table, quote, timestamp


def new_track_id() -> str:
    """A human-readable run id, as xetrack makes them (e.g. purple-mountain-4392)."""
    from xetrack import Tracker

    return Tracker.generate_track_id()


@dataclass
class RunOptions:
    """What to run; None means 'as benchmark.toml says'."""

    phase: str = "experiment"
    limit: int | None = None
    executor: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    experiment_version: str | None = None
    use_cache: bool | None = None
    only_input_ids: set[str] | None = None
    only_errors: bool = False
    show_progress: bool = True


@dataclass
class RunSummary:
    """What a run did, for the CLI, the metrics step and the tests."""

    experiment_version: str
    phase: str
    tasks: int = 0
    computed: int = 0
    cache_hits: int = 0
    resumed: int = 0
    errors: int = 0
    retries: int = 0
    stopped_early: bool = False
    stop_reason: str = ""
    seconds: float = 0.0
    track_ids: dict[str, str] = field(default_factory=dict)
    configs: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Planned:
    """A keyed task and the columns its row will carry (slots, not frozen: 20,000 are made per run)."""

    key: str
    config_id: str
    input_digest: str
    item: dict[str, Any]
    params: Any
    params_columns: dict[str, Any]


def user_modules() -> tuple[Any, Any, Any]:
    """The user-owned modules: params, predict, data (imported lazily: they may be heavy)."""
    from .. import data, params, predict

    return params, predict, data


def latest_version(cfg: BenchConfig) -> str | None:
    """The experiment version recorded last (what `make retry-errors` re-runs by default)."""
    with Store(cfg.db_path) as store:
        table = cfg.predictions_table
        if not {"experiment_version", "phase"} <= set(store.columns(table)):
            return None
        rows = store.query(
            f"SELECT experiment_version FROM {quote(table)} WHERE phase = 'experiment' ORDER BY rowid DESC LIMIT 1"
        )
    return rows[0][0] if rows else None


def plan_tasks(grid: Sequence[Any], items: Sequence[dict], code: str) -> list[_Planned]:
    """Every (configuration, input) pair with its stable cache key."""
    planned = []
    digests = list(map(keys.input_digest, items))
    ids = [item.get("input_id") for item in items]
    for config in grid:
        cid = keys.config_id(config)
        columns = {f"params_{k}": v for k, v in keys.params_dict(config).items()}
        cache_keys = map(keys.cache_key, repeat(code), repeat(cid), ids, digests)
        planned += [
            _Planned(key, cid, item_digest, item, config, columns)
            for key, item, item_digest in zip(cache_keys, items, digests, strict=True)
        ]
    return planned


class _Writer:
    """Buffers result rows and records them in batches, from one thread of the main process.

    The thread is the only user of the store while it runs (`close` joins it): SQLite works
    without the GIL, so a batch is written while the next one is computed. At most two batches
    wait in the queue; a kill loses them, and the next run computes them again.
    """

    def __init__(self, store: Store, table: str, batch_size: int, interval: float, monitor: SystemMonitor | None):
        self.store, self.table = store, table
        self.batch_size, self.interval = batch_size, interval
        self.monitor = monitor
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.perf_counter()
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="writer", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.batch_size or time.perf_counter() - self.last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered rows to the writer thread (raises what a previous batch raised)."""
        if self._error is not None:
            raise self._error
        if self.buffer:
            if self.monitor is not None:
                system = self.monitor.snapshot()
                for row in self.buffer:
                    row.update(system)
            self._queue.put(self.buffer)
            self.buffer = []
        self.last_flush = time.perf_counter()

    def close(self) -> None:
        """Write what is buffered and wait for the thread: after this, the store is the caller's again."""
        try:
            self.flush()
        finally:
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.store.insert(self.table, batch)
                except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
                    self._error = error


def _row_tail(plan: _Planned, code: str, meta: dict) -> dict[str, Any]:
    """The columns every row of one configuration shares, in table order (built once per configuration)."""
    return {**plan.params_columns, "config_id": plan.config_id, "input_digest": "", "code_version": code,
            "cache_key": "", **meta}


def _result_row(plan: _Planned, result: dict[str, Any], track_id: str, tail: dict[str, Any]) -> dict[str, Any]:
    """xetrack's columns, predict's result, then the configuration's shared columns and this task's keys."""
    row = {
        "track_id": track_id,
        "timestamp": timestamp(),
        "function_name": "predict",
        "function_time": result.pop("function_time", None),
        "cache": "",
    }
    row.update(result)
    row.update(tail)
    row["input_digest"] = plan.input_digest
    row["cache_key"] = plan.key
    return row


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(
    cfg: BenchConfig,
    options: RunOptions | None = None,
    predict_fn: Callable[[dict, Any], dict] | None = None,
) -> RunSummary:
    """Run the benchmark described by `cfg` and record every prediction."""
    options = options or RunOptions()
    params_mod, predict_mod, data_mod = user_modules()
    predict_fn = predict_fn or predict_mod.predict
    started = time.perf_counter()

    phase = options.phase
    limit = options.limit if options.limit is not None else (cfg.run.dev_limit if phase == "dev" else None)
    items = data_mod.load_items(limit=limit)
    if options.only_input_ids is not None:
        items = [i for i in items if str(i.get("input_id")) in options.only_input_ids]
    grid = list(params_mod.grid())
    code = keys.code_version(predict_mod)
    version = options.experiment_version or ("dev" if phase == "dev" else env.next_experiment_version(cfg.root))
    meta = env.environment_metadata(cfg.root, cfg.data_path, version, phase)
    summary = RunSummary(experiment_version=version, phase=phase, configs=grid, metadata=meta)
    summary.track_ids = {keys.config_id(c): new_track_id() for c in grid}

    planned = plan_tasks(grid, items, code)
    summary.tasks = len(planned)
    table = cfg.predictions_table
    use_cache = cfg.run.cache if options.use_cache is None else options.use_cache

    with Store(cfg.db_path) as store:
        try:
            store.ensure_table(table)
            todo = _resume(store, table, planned, version, phase, options.only_errors, summary)
            progress = Progress(summary.tasks, label=f"{version} {phase}") if options.show_progress else None
            if progress:
                progress.skip(summary.resumed)
            if use_cache and todo:
                todo = _log_cache_hits(store, table, todo, meta, summary, progress)
            if todo:  # many batch commits ahead: WAL (one commit, like the cache hits', needs none)
                store.begin_bulk()
            _compute(cfg, options, store, table, todo, predict_fn, code, meta, summary, progress)
            if progress:
                progress.close()
        finally:
            store.end_bulk()
    summary.seconds = time.perf_counter() - started
    return summary


def _log_cache_hits(
    store: Store, table: str, todo: list[_Planned], meta: dict, summary: RunSummary, progress: Progress | None
) -> list[_Planned]:
    """Record the tasks an earlier run computed without error as cache hits; return the others."""
    hits = store.successful_keys(table, [(p.config_id, p.item.get("input_id"), p.key) for p in todo])
    if not hits:
        return todo
    summary.cache_hits = store.copy_cached_rows(table, [rowid for rowid, _ in hits.values()], meta, summary.track_ids)
    if progress:
        progress.skip(summary.cache_hits, cache_hits=summary.cache_hits)
    return [p for p in todo if p.key not in hits]


def _resume(
    store: Store, table: str, planned: list[_Planned], version: str, phase: str, only_errors: bool, summary: RunSummary
) -> list[_Planned]:
    """The tasks this run still has to do, given what this experiment version already recorded.

    Resume is by (configuration, input), so one version never holds two rows for the same
    prediction. A recorded row counts as done only when it is error-free and has the key this run
    would compute (same predict code, same input content). Error rows, and stale rows (predict()
    or the input changed since, e.g. between two `make dev`), are moved to the error-history table
    and recomputed; with `only_errors` (retry-errors) only error rows are. Configurations keep the
    track_id they were first recorded under.
    """
    where = {"experiment_version": version, "phase": phase}
    recorded = store.recorded(table, where)
    if not recorded:  # a new version (the usual case): nothing to resume, nothing to retry
        if only_errors:
            summary.tasks = 0
            return []
        return planned
    summary.track_ids.update(store.track_ids(table, where))
    wanted = {(p.config_id, str(p.item.get("input_id"))): p.key for p in planned}
    done: set[tuple[str, str]] = set()
    redo: dict[int, str] = {}  # rowid -> why it is recomputed
    for rowid, key, cid, iid, failed in recorded:
        pair = (cid, iid)
        if pair not in wanted:
            continue  # not part of this run (e.g. a smaller --limit): left as it is
        if failed:
            redo[rowid] = "error"
        elif key == wanted[pair]:
            done.add(pair)
        elif not only_errors:
            redo[rowid] = "stale"
    if redo:
        moved_at = timestamp()
        for reason in sorted(set(redo.values())):
            rowids = [rowid for rowid, why in redo.items() if why == reason]
            store.move_rows(table, history_table(table), rowids, {"moved_at": moved_at, "moved_because": reason})
    todo = [p for p in planned if (p.config_id, str(p.item.get("input_id"))) not in done]
    if only_errors:
        failed_pairs = {(cid, iid) for rowid, _, cid, iid, failed in recorded if failed} - done
        todo = [p for p in todo if (p.config_id, str(p.item.get("input_id"))) in failed_pairs]
        summary.tasks = len(todo)
    else:
        summary.resumed = len(planned) - len(todo)
    return todo


def _compute(
    cfg: BenchConfig,
    options: RunOptions,
    store: Store,
    table: str,
    todo: list[_Planned],
    predict_fn: Callable,
    code: str,
    meta: dict,
    summary: RunSummary,
    progress: Progress | None,
) -> None:
    """Execute the remaining tasks and record them; flushes what is done even when interrupted."""
    if not todo:
        return
    run_settings = cfg.run
    executor = get_executor(options.executor or run_settings.executor)
    policy = RetryPolicy(run_settings.max_retries, run_settings.backoff_base_seconds, run_settings.backoff_max_seconds)
    tasks = [Task(i, p.item, p.params) for i, p in enumerate(todo)]
    monitor = SystemMonitor() if run_settings.log_system_params else None
    previous_handler = None
    if sys.platform != "win32":
        try:
            previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        except ValueError:  # not the main thread
            previous_handler = None
    writer = _Writer(store, table, run_settings.write_batch_size, run_settings.write_interval_seconds, monitor)
    results = executor(
        predict_fn,
        tasks,
        policy,
        workers=options.workers or run_settings.workers,
        scheduler=options.scheduler,
    )
    firsts = {p.config_id: p for p in todo}  # one task per configuration
    tails = {cid: _row_tail(p, code, meta) for cid, p in firsts.items()}
    try:
        if monitor is not None:
            monitor.__enter__()
        min_rows = run_settings.min_rows_for_error_stop
        for index, result in results:
            plan = todo[index]
            failed = bool(result.get("error"))
            summary.computed += 1
            summary.errors += failed
            summary.retries += result["retry_count"]
            cid = plan.config_id
            writer.add(_result_row(plan, result, summary.track_ids[cid], tails[cid]))
            if progress:
                progress.update(1, failed)
            # The rate can only cross the threshold on an error, or when min_rows is reached.
            if (failed or summary.computed == min_rows) and _error_rate_exceeded(
                summary, run_settings.max_error_rate, min_rows
            ):
                summary.stopped_early = True
                summary.stop_reason = (
                    f"error rate {summary.errors / summary.computed:.0%} after {summary.computed} rows "
                    f"exceeds max_error_rate={run_settings.max_error_rate:.0%}"
                )
                break
    finally:
        close = getattr(results, "close", None)
        if close:
            close()
        writer.close()
        if monitor is not None:
            monitor.__exit__()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _error_rate_exceeded(summary: RunSummary, threshold: float, min_rows: int) -> bool:
    return summary.computed >= min_rows and summary.errors / summary.computed > threshold
