"""Run a benchmark: every (input, configuration) exactly once, resumable, cached, recorded in batches.

Template-owned. For each run:

1. expand the grid of configurations over the items, and key every task (keys.py); refuse,
   saying how many and why, when a release invalidated recorded results (unless recompute_stale);
2. skip tasks this experiment version already recorded (resume after a crash or a kill);
3. log cache hits from earlier runs in one SQL statement (no predict() call), with the
   segmentation fields computed from the items now (a segmentation added since is filled in);
4. compute the rest with the chosen executor, each call wrapped in the row envelope
   (envelope.py), and record the results from this process only, in batches (a kill loses the
   batch not yet written, which the next run computes again);
5. stop early when the error rate passes the configured threshold.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core import env
from .._core.config import BenchConfig
from .._core.datafiles import check_items
from .._run.envelope import Envelope, segment_values
from .._run.executors import RetryPolicy, Task, get_executor, resolve_workers
from .._run.monitor import SystemMonitor
from .._run.progress import Progress
from .._storage import keys
from .._storage.store import RunRecorder, Store, history_table, timestamp
from .._storage.store import latest_version as store_latest_version


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
    # Recompute the tasks whose recorded results a template release invalidated (keys.INVALIDATED).
    recompute_stale: bool = False


class StaleResultsError(RuntimeError):
    """A release invalidated recorded results this run would use: the message says how many, why, and the flag."""


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
    # Rows moved to the error-history table before being recomputed, by why: {"stale": n, "error": m}.
    moved: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    track_ids: dict[str, str] = field(default_factory=dict)
    configs: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Every (configuration, input) task of a run, as lists: task i is input i % n of configuration i // n.

    Lists, not an object per task: a run plans every task, even when all are cache hits.
    """

    items: list[dict[str, Any]]
    configs: list[Any]
    config_ids: list[str]
    digests: list[str]  # per input
    keys: list[str]  # per task
    identities: list[str]  # per task: config_id + input_digest, what the cache matches on (with the code)
    key_prefixes: dict[str, str]  # config_id -> the first half of its tasks' cache_key

    def __len__(self) -> int:
        return len(self.keys)

    def task(self, index: int) -> Task:
        n = len(self.items)
        return Task(index, self.items[index % n], self.configs[index // n])

    def pair(self, index: int) -> tuple[str, str]:
        """(config_id, input_id as text): what one version records once."""
        n = len(self.items)
        return self.config_ids[index // n], str(self.items[index % n].get("input_id"))


def user_modules() -> tuple[Any, Any, Any]:
    """The user-owned modules: params, predict, data (imported lazily: they may be heavy)."""
    from .._core.user import user_module

    return user_module("params"), user_module("predict"), user_module("data")


def latest_version(cfg: BenchConfig) -> str | None:
    """The latest experiment version (what `make retry-errors` re-runs by default)."""
    return store_latest_version(cfg.db_path, cfg.predictions_table, phase="experiment")


def unique_configs(grid: Sequence[Any]) -> list[Any]:
    """The grid in its order, each configuration once (listed twice, it would be computed twice)."""
    unique: dict[str, Any] = {}
    for config in grid:
        unique.setdefault(keys.config_id(config), config)
    return list(unique.values())


def plan_tasks(grid: Sequence[Any], items: Sequence[dict], code: str) -> Plan:
    """Every (configuration, input) pair with its stable identity and cache key."""
    items = list(items)
    digests = keys.input_digests(items)
    config_ids = [keys.config_id(config) for config in grid]
    prefixes = {cid: keys.key_prefix(code, cid) for cid in config_ids}
    task_keys = [prefixes[cid] + digest for cid in config_ids for digest in digests]
    identities = [keys.identity(cid, digest) for cid in config_ids for digest in digests]
    return Plan(items, list(grid), config_ids, digests, task_keys, identities, prefixes)


def shared_columns(plan: Plan, code: str, meta: dict[str, Any], track_ids: dict[str, str]) -> list[dict[str, Any]]:
    """Per configuration, the columns all its rows share: xetrack's, the parameters, the run's metadata."""
    return [
        {
            "track_id": track_ids[cid],
            "function_name": "predict",
            "cache": "",
            **{f"params_{k}": v for k, v in keys.params_dict(config).items()},
            "config_id": cid,
            "code_version": code,
            "cache_key_version": keys.KEY_VERSION,
            **meta,
        }
        for config, cid in zip(plan.configs, plan.config_ids, strict=True)
    ]


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
    envelope = Envelope(predict_fn or predict_mod.predict, cfg.ground_truth, cfg.segmentations)
    started = time.perf_counter()

    phase = options.phase
    limit = options.limit if options.limit is not None else (cfg.run.dev_limit if phase == "dev" else None)
    items = data_mod.load_items(limit=limit)
    check_items(items, cfg.data_path)  # empty data, missing or repeated ids: refused before any work
    if options.only_input_ids is not None:
        items = [i for i in items if str(i.get("input_id")) in options.only_input_ids]
    grid = unique_configs(params_mod.grid())
    code = keys.code_version(predict_mod)
    version = options.experiment_version or ("dev" if phase == "dev" else env.next_experiment_version(cfg.root))
    meta = env.environment_metadata(cfg.root, cfg.data_path, version, phase)
    summary = RunSummary(experiment_version=version, phase=phase, configs=grid, metadata=meta)
    summary.track_ids = {keys.config_id(c): new_track_id() for c in grid}

    plan = plan_tasks(grid, items, code)
    summary.tasks = len(plan)
    table = cfg.predictions_table
    use_cache = cfg.run.cache if options.use_cache is None else options.use_cache

    with Store(cfg.db_path) as store:
        store.ensure_table(table)
        if use_cache and not options.only_errors:
            _check_invalidated(store, table, plan, code, options.recompute_stale)
        todo = _resume(store, table, plan, code, version, phase, options.only_errors, summary)
        if not todo:
            summary.seconds = time.perf_counter() - started
            return summary
        recorder = RunRecorder(store, table, shared_columns(plan, code, meta, summary.track_ids))
        progress = Progress(summary.tasks, label=f"{version} {phase}") if options.show_progress else None
        if progress:
            progress.skip(summary.resumed)
        if use_cache:
            todo = _log_cache_hits(recorder, plan, todo, summary, progress, envelope)
        _compute(cfg, options, recorder, plan, todo, envelope, summary, progress)
        if progress:
            progress.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _log_cache_hits(
    recorder: RunRecorder,
    plan: Plan,
    todo: list[int],
    summary: RunSummary,
    progress: Progress | None,
    envelope: Envelope,
) -> list[int]:
    """Record the tasks an earlier run computed without error as cache hits; return the others.

    The copies get the item segmentations' values computed from the items now, where the cached
    row has none (a segmentation added by `copier update` since it was computed).
    """
    every_task = len(todo) == len(plan)
    wanted = plan.identities if every_task else [plan.identities[index] for index in todo]
    names = envelope.item_segments(plan.configs[0]) if plan.configs else ()
    segments = None
    if names:
        per_input = segment_values(plan.items, names)
        n = len(plan.items)
        segments = per_input * len(plan.configs) if every_task else [per_input[index % n] for index in todo]
    hits = recorder.copy_cache_hits(wanted, plan.key_prefixes, names, segments)
    summary.cache_hits = len(hits)
    if progress:
        progress.skip(summary.cache_hits, cache_hits=summary.cache_hits)
    if not hits:
        return todo
    if len(hits) == len(todo):
        return []
    hit = set(hits)
    return [index for position, index in enumerate(todo) if position not in hit]


def _check_invalidated(store: Store, table: str, plan: Plan, code: str, recompute_stale: bool) -> None:
    """Before anything is computed: say how many of this run's tasks a release invalidated, and why.

    Those are tasks with an error-free recorded result whose identity matches but was recorded
    under an identity version this release lists in keys.INVALIDATED (and with no trusted row).
    Without `recompute_stale` the run refuses (recomputing may cost money: API calls); with it,
    the message is printed and the tasks are recomputed (rows of the resumed version are moved to
    the error-history table as `stale`, and counted in the summary).
    """
    if not keys.INVALIDATED:  # the usual case: no query at all
        return
    recorded = store.identities_by_key_version(table, code, plan.config_ids)
    trusted = set().union(*(ids for version, ids in recorded.items() if version not in keys.INVALIDATED))
    planned = set(plan.identities) - trusted
    counts = {version: len(ids & planned) for version, ids in sorted(recorded.items()) if version in keys.INVALIDATED}
    affected = len(set().union(*(recorded[version] for version in counts)) & planned)
    if not affected:
        return
    reasons = "; ".join(
        f"{count} recorded under cache identity v{version}: {keys.INVALIDATED[version]}"
        for version, count in counts.items()
        if count
    )
    message = f"this release invalidates the recorded results of {affected} of this run's tasks ({reasons})"
    if not recompute_stale:
        raise StaleResultsError(f"{message}. Nothing was computed: re-run with --recompute-stale to recompute them.")
    print(f"{message}: recomputing them (--recompute-stale).", file=sys.stderr, flush=True)


def _resume(
    store: Store,
    table: str,
    plan: Plan,
    code: str,
    version: str,
    phase: str,
    only_errors: bool,
    summary: RunSummary,
) -> list[int]:
    """The tasks (plan indexes) this run still has to do, given what this experiment version already recorded.

    Resume is by (configuration, input), so one version never holds two rows for the same
    prediction. A recorded row counts as done only when it is error-free and has this task's
    identity (same predict code version, same input content: keys.py; the cache_key's format
    does not matter, so a run resumed after a template update keeps its rows). Error rows, and
    stale rows (predict() or the input changed since, e.g. between two `make dev`, or a release
    invalidated the row's identity version), are moved to the error-history table, counted in
    `summary.moved`, and recomputed; with `only_errors` (retry-errors) only error rows are.
    Configurations keep the track_id they were first recorded under.
    """
    where = {"experiment_version": version, "phase": phase}
    recorded = store.recorded(table, where)
    if not recorded:  # a new version (the usual case): nothing to resume, nothing to retry
        if only_errors:
            summary.tasks = 0
            return []
        return list(range(len(plan)))
    summary.track_ids.update(store.track_ids(table, where))
    pairs = [plan.pair(index) for index in range(len(plan))]
    wanted = dict(zip(pairs, plan.identities, strict=True))
    done: set[tuple[str, str]] = set()
    redo: dict[int, str] = {}  # rowid -> why it is recomputed
    for rowid, row_code, cid, iid, digest, key_version, failed in recorded:
        pair = (cid, iid)
        if pair not in wanted:
            continue  # not part of this run (e.g. a smaller --limit): left as it is
        if failed:
            redo[rowid] = "error"
        elif (
            row_code == code
            and digest is not None
            and keys.identity(cid, digest) == wanted[pair]
            and key_version not in keys.INVALIDATED
        ):
            done.add(pair)
        elif not only_errors:
            redo[rowid] = "stale"
    if redo:
        moved_at = timestamp()
        for reason in sorted(set(redo.values())):
            rowids = [rowid for rowid, why in redo.items() if why == reason]
            moved = store.move_rows(
                table, history_table(table), rowids, {"moved_at": moved_at, "moved_because": reason}
            )
            summary.moved[reason] = summary.moved.get(reason, 0) + moved
    todo = [index for index, pair in enumerate(pairs) if pair not in done]
    if only_errors:
        failed_pairs = {(cid, iid) for _, _, cid, iid, _, _, failed in recorded if failed} - done
        todo = [index for index in todo if pairs[index] in failed_pairs]
        summary.tasks = len(todo)
    else:
        summary.resumed = len(plan) - len(todo)
    return todo


class _Batch:
    """Computed rows waiting to be recorded, grouped by the names of their varying columns.

    A row is (configuration index, *predict's result, timestamp, input_digest, cache_key): the
    columns its configuration shares are stored once (store.RunRecorder). Written every
    `size` rows or `interval` seconds, so a killed run loses at most one batch.
    """

    def __init__(self, recorder: RunRecorder, size: int, interval: float, monitor: SystemMonitor | None):
        self.recorder, self.size, self.interval, self.monitor = recorder, size, interval, monitor
        self.groups: dict[tuple[str, ...], list[tuple]] = {}
        self.count = 0
        self.last_write = time.perf_counter()

    def add(self, config_index: int, result: dict[str, Any], input_digest: str, key: str) -> None:
        names = (*result, "timestamp", "input_digest", "cache_key")  # the harness's last: they win
        rows = self.groups.get(names)
        if rows is None:
            rows = self.groups[names] = []
        rows.append((config_index, *result.values(), timestamp(), input_digest, key))
        self.count += 1
        if self.count >= self.size or time.perf_counter() - self.last_write >= self.interval:
            self.write()

    def write(self) -> None:
        if self.count:
            system = self.monitor.snapshot() if self.monitor is not None else None
            self.recorder.write(self.groups, system)
            self.groups, self.count = {}, 0
        self.last_write = time.perf_counter()


def _compute(
    cfg: BenchConfig,
    options: RunOptions,
    recorder: RunRecorder,
    plan: Plan,
    todo: list[int],
    envelope: Envelope,
    summary: RunSummary,
    progress: Progress | None,
) -> None:
    """Execute the remaining tasks and record them; writes what is done even when interrupted."""
    if not todo:
        return
    run_settings = cfg.run
    executor = get_executor(options.executor or run_settings.executor)
    policy = RetryPolicy(run_settings.max_retries, run_settings.backoff_base_seconds, run_settings.backoff_max_seconds)
    n = len(plan.items)
    tasks = [plan.task(index) for index in todo]
    monitor = SystemMonitor() if run_settings.log_system_params else None
    previous_handler = None
    if sys.platform != "win32":
        try:
            previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        except ValueError:  # not the main thread
            previous_handler = None
    batch = _Batch(recorder, run_settings.write_batch_size, run_settings.write_interval_seconds, monitor)
    results = executor(
        envelope,
        tasks,
        policy,
        workers=resolve_workers(options.workers if options.workers is not None else run_settings.workers),
        scheduler=options.scheduler,
        timeout=run_settings.task_timeout_seconds,
        adaptive=run_settings.adaptive_concurrency,
    )
    digests, task_keys = plan.digests, plan.keys
    try:
        if monitor is not None:
            monitor.__enter__()
        min_rows = run_settings.min_rows_for_error_stop
        for index, result in results:
            failed = bool(result.get("error"))
            summary.computed += 1
            summary.errors += failed
            summary.retries += result["retry_count"]
            batch.add(index // n, result, digests[index % n], task_keys[index])
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
        batch.write()
        if monitor is not None:
            monitor.__exit__()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _error_rate_exceeded(summary: RunSummary, threshold: float, min_rows: int) -> bool:
    return summary.computed >= min_rows and summary.errors / summary.computed > threshold
