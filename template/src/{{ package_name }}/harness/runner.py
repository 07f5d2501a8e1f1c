"""Run a benchmark: every (input, configuration) exactly once, resumable, cached, recorded in batches.

Template-owned. For each run:

1. expand the grid of configurations over the items, and key every task (keys.py);
2. skip tasks this experiment version already recorded (resume after a crash or a kill);
3. log cache hits from earlier runs in one SQL statement (no predict() call);
4. compute the rest with the chosen executor, and record the results from this process only,
   in batches (a kill loses at most one batch, which the next run computes again);
5. stop early when the error rate passes the configured threshold.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import env, keys
from .config import BenchConfig
from .executors import RetryPolicy, Task, get_executor
from .monitor import SystemMonitor
from .progress import Progress
from .store import Store, timestamp


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


@dataclass(frozen=True)
class _Planned:
    """A keyed task and the columns its row will carry."""

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


def plan_tasks(grid: Sequence[Any], items: Sequence[dict], code: str) -> list[_Planned]:
    """Every (configuration, input) pair with its stable cache key."""
    planned = []
    digests = [keys.input_digest(item) for item in items]
    for config in grid:
        cid = keys.config_id(config)
        columns = {f"params_{k}": v for k, v in keys.params_dict(config).items()}
        for item, item_digest in zip(items, digests):
            key = keys.cache_key(code, cid, item.get("input_id"), item_digest)
            planned.append(_Planned(key, cid, item_digest, item, config, columns))
    return planned


class _Writer:
    """Buffers result rows and records them in batches from the main process."""

    def __init__(self, store: Store, table: str, batch_size: int, interval: float, monitor: SystemMonitor | None):
        self.store, self.table = store, table
        self.batch_size, self.interval = batch_size, interval
        self.monitor = monitor
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.perf_counter()

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.batch_size or time.perf_counter() - self.last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            if self.monitor is not None:
                system = self.monitor.snapshot()
                for row in self.buffer:
                    row.update(system)
            self.store.insert(self.table, self.buffer)
            self.buffer = []
        self.last_flush = time.perf_counter()


def _result_row(plan: _Planned, result: dict[str, Any], track_id: str, code: str, meta: dict) -> dict[str, Any]:
    row = {
        "track_id": track_id,
        "timestamp": timestamp(),
        "function_name": "predict",
        "function_time": result.pop("function_time", None),
        "cache": "",
    }
    row.update(result)
    row.update(plan.params_columns)
    row.update(
        config_id=plan.config_id,
        input_digest=plan.input_digest,
        code_version=code,
        cache_key=plan.key,
    )
    row.update(meta)
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
        store.ensure_table(table)
        all_keys = [p.key for p in planned]
        done = store.present_keys(table, all_keys, {"experiment_version": version, "phase": phase})
        todo = [p for p in planned if p.key not in done]
        summary.resumed = len(planned) - len(todo)

        progress = Progress(len(planned), label=f"{version} {phase}") if options.show_progress else None
        if progress:
            progress.skip(summary.resumed)

        if use_cache and todo:
            hits = store.successful_keys(table, [p.key for p in todo])
            if hits:
                summary.cache_hits = store.copy_cached_rows(
                    table, [rowid for rowid, _ in hits.values()], meta, summary.track_ids
                )
                todo = [p for p in todo if p.key not in hits]
                if progress:
                    progress.skip(summary.cache_hits, cache_hits=summary.cache_hits)

        _compute(cfg, options, store, table, todo, predict_fn, code, meta, summary, progress)
        if progress:
            progress.close()
    summary.seconds = time.perf_counter() - started
    return summary


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
    try:
        if monitor is not None:
            monitor.__enter__()
        for index, result in results:
            plan = todo[index]
            failed = bool(result.get("error"))
            summary.computed += 1
            summary.errors += failed
            summary.retries += int(result.get("retry_count") or 0)
            writer.add(_result_row(plan, result, summary.track_ids[plan.config_id], code, meta))
            if progress:
                progress.update(done=1, errors=int(failed))
            if _error_rate_exceeded(summary, run_settings.max_error_rate, run_settings.min_rows_for_error_stop):
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
        writer.flush()
        if monitor is not None:
            monitor.__exit__()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _error_rate_exceeded(summary: RunSummary, threshold: float, min_rows: int) -> bool:
    return summary.computed >= min_rows and summary.errors / summary.computed > threshold
