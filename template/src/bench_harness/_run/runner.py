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

import json
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from .._core import env
from .._core.config import BenchConfig
from .._core.datafiles import check_items
from .._run.envelope import Envelope, segment_value
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


# Tasks planned, looked up and handed out at a time: every configuration of CHUNK_TASKS // configurations
# items. Bounds the run's memory (a chunk's items, keys and pending rows) whatever the number of items.
CHUNK_TASKS = 20_000


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


def shared_columns(
    configs: Sequence[Any], config_ids: Sequence[str], code: str, meta: dict[str, Any], track_ids: dict[str, str]
) -> list[dict[str, Any]]:
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
        for config, cid in zip(configs, config_ids, strict=True)
    ]


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def item_source(data_mod: Any, limit: int | None) -> Callable[[], Iterable[dict[str, Any]]]:
    """A function giving a fresh pass over load_items(limit): the run reads the items twice.

    The first pass checks the ids and counts the items (the progress total), the second runs them,
    so neither holds them all. A list (or any re-iterable) is iterated again; a generator or
    iterator is asked for again by calling load_items() a second time (it must yield the same
    items). `limit` is applied here too, in case load_items() ignores it.
    """
    first: Iterable[dict[str, Any]] | None = data_mod.load_items(limit=limit)
    reiterable = iter(first) is not first  # type: ignore[arg-type]

    def fresh() -> Iterable[dict[str, Any]]:
        nonlocal first
        items = first
        if not reiterable:
            first = None  # a one-shot iterator serves one pass only
        if items is None:
            items = data_mod.load_items(limit=limit)
        return items if limit is None else islice(items, limit)

    return fresh


def chunked(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Lists of at most `size` items, in order."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def recorded_as_planned(cfg: BenchConfig, version: str) -> bool:
    """Whether experiment `version` recorded, without error, exactly the cache keys a run would plan now.

    What `make experiment` asks to skip a repeat (versioning.unchanged_experiment), streamed: the
    items chunk by chunk, each chunk's recorded keys read through the version's index, so a million
    items never sit in memory with their keys.
    """
    import sqlite3
    from contextlib import closing

    from .._storage.store import column_names, quote

    params_mod, predict_mod, data_mod = user_modules()
    grid = unique_configs(params_mod.grid())
    code = keys.code_version(predict_mod)
    config_ids = [keys.config_id(config) for config in grid]
    prefixes = [keys.key_prefix(code, cid) for cid in config_ids]
    table = quote(cfg.predictions_table)
    where = "experiment_version = ? AND phase = 'experiment' AND error IS NULL"
    with closing(sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)) as con:
        needed = {"cache_key", "error", "experiment_version", "phase", "config_id", "input_id"}
        if not grid or not needed <= set(column_names(con, cfg.predictions_table)):
            return False
        recorded = con.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", (version,)).fetchone()[0]
        planned = 0
        for items in chunked(item_source(data_mod, None)(), max(1, CHUNK_TASKS // len(grid))):
            digests = keys.input_digests(items)
            wanted = {prefix + digest for prefix in prefixes for digest in digests}
            planned += len(wanted)
            found = con.execute(
                f"SELECT cache_key FROM {table} WHERE {where} AND config_id IN (SELECT value FROM json_each(?)) "
                "AND input_id IN (SELECT value FROM json_each(?))",
                (version, json.dumps(config_ids), json.dumps([item.get("input_id") for item in items], default=str)),
            )
            if not wanted <= {key for (key,) in found}:
                return False
    return planned == recorded


def run(
    cfg: BenchConfig,
    options: RunOptions | None = None,
    predict_fn: Callable[[dict, Any], dict] | None = None,
) -> RunSummary:
    """Run the benchmark described by `cfg` and record every prediction, streaming the items in chunks."""
    options = options or RunOptions()
    git_state = env.git_state_later(cfg.root, cfg.data_path)  # git's processes run while the items are read
    params_mod, predict_mod, data_mod = user_modules()
    envelope = Envelope(predict_fn or predict_mod.predict, cfg.ground_truth, cfg.segmentations)
    started = time.perf_counter()

    phase = options.phase
    limit = options.limit if options.limit is not None else (cfg.run.dev_limit if phase == "dev" else None)
    items = item_source(data_mod, limit)
    # Empty data, missing or repeated ids: refused before any work (the first pass, which also counts).
    n_items = check_items(items(), cfg.data_path, again=items)
    if options.only_input_ids is not None:
        only = options.only_input_ids
        unfiltered = items
        items = lambda: (item for item in unfiltered() if str(item.get("input_id")) in only)  # noqa: E731
        n_items = sum(1 for _ in items())
    grid = unique_configs(params_mod.grid())
    code = keys.code_version(predict_mod)
    version = options.experiment_version or ("dev" if phase == "dev" else env.next_experiment_version(cfg.root))
    meta = env.environment_metadata(version, phase, git_state())
    summary = RunSummary(experiment_version=version, phase=phase, configs=grid, metadata=meta)
    config_ids = [keys.config_id(c) for c in grid]
    summary.track_ids = {cid: new_track_id() for cid in config_ids}
    summary.tasks = n_items * len(grid)
    table = cfg.predictions_table
    use_cache = (cfg.run.cache if options.use_cache is None else options.use_cache) and not options.only_errors
    chunk_items = max(1, CHUNK_TASKS // max(1, len(grid)))

    with Store(cfg.db_path) as store:
        store.ensure_table(table)
        where = {"experiment_version": version, "phase": phase}
        resuming = store.has_rows(table, where)
        if options.only_errors:
            summary.tasks = store.count_failed(table, where) if resuming else 0
            if not summary.tasks:
                summary.seconds = time.perf_counter() - started
                return summary
        if use_cache:
            _check_invalidated(store, table, lambda: chunked(items(), chunk_items), grid, code, options.recompute_stale)
        if resuming:
            summary.track_ids.update(store.track_ids(table, where))
        recorder = RunRecorder(store, table, shared_columns(grid, config_ids, code, meta, summary.track_ids))
        # Asked once, before this run writes anything (its own rows are no cache hits): a first run
        # looks nothing up in any chunk.
        use_cache = use_cache and recorder.has_cached_rows()
        progress = Progress(summary.tasks, label=f"{version} {phase}") if options.show_progress else None
        planner = _Planner(store, recorder, grid, config_ids, code, where, envelope, summary, progress)
        planner.resuming, planner.use_cache, planner.only_errors = resuming, use_cache, options.only_errors
        tasks = planner.tasks(chunked(items(), chunk_items))
        first = next(tasks, None)  # plans chunks until one has work: a fully cached run starts no executor
        if first is not None:
            _compute(cfg, options, recorder, planner, chain([first], tasks), envelope, summary, progress)
        if progress:
            progress.close()
    summary.seconds = time.perf_counter() - started
    return summary


class _Planner:
    """Plans a streamed run chunk by chunk, in the main thread, as the executor asks for tasks.

    For each chunk of items (CHUNK_TASKS tasks at most, every configuration of those items): key
    its tasks, skip what this version already recorded (resume), copy the cache hits (SQL), and
    hand out the rest. What a handed-out task's row needs (its configuration, input digest and
    cache key) waits in `pending` until its row comes back: memory is bounded by the chunk and the
    executor's tasks in flight, never by the run.

    Why chunks of items with every configuration inside, rather than one pass over the items per
    configuration: load_items() is read once for the run (a generator re-reads a file or a remote
    set each time); resume and the cache look-up are one query per chunk for all configurations;
    the progress total (items x configurations) is known from the counting pass; and the error-rate
    stop (max_error_rate over every computed row so far) sees every configuration from the start,
    so a configuration that fails on everything stops the run early instead of after the others.
    """

    def __init__(
        self,
        store: Store,
        recorder: RunRecorder,
        grid: list[Any],
        config_ids: list[str],
        code: str,
        where: dict[str, Any],
        envelope: Envelope,
        summary: RunSummary,
        progress: Progress | None,
    ) -> None:
        self.store, self.recorder, self.grid, self.config_ids, self.code = store, recorder, grid, config_ids, code
        self.where, self.envelope, self.summary, self.progress = where, envelope, summary, progress
        self.prefixes = {cid: keys.key_prefix(code, cid) for cid in config_ids}
        self.segment_names = envelope.item_segments(grid[0]) if grid else ()
        self.resuming = self.use_cache = self.only_errors = False
        self.pending: dict[int, tuple[int, str, str]] = {}  # task index -> (config index, input digest, cache key)
        self.issued = 0

    def tasks(self, chunks: Iterable[list[dict[str, Any]]]) -> Iterator[Task]:
        """The tasks to compute, chunk after chunk; resumed and cached tasks are settled on the way."""
        grid, pending, prefixes, config_ids = self.grid, self.pending, self.prefixes, self.config_ids
        new_task = tuple.__new__  # Task(...) without its Python-level __new__: a run makes one per task
        for items in chunks:
            digests = keys.input_digests(items)
            n = len(items)
            todo: Sequence[int] = range(n * len(grid))  # chunk task t: item t % n of configuration t // n
            if self.resuming:
                todo = self._resume(items, digests, todo)
            if self.use_cache and todo:
                todo = self._cache_hits(items, digests, todo)
            for t in todo:
                config_index, position = divmod(t, n)
                digest = digests[position]
                index = self.issued
                self.issued += 1
                pending[index] = (config_index, digest, prefixes[config_ids[config_index]] + digest)
                yield new_task(Task, (index, items[position], grid[config_index]))

    def _resume(self, items: list[dict[str, Any]], digests: list[str], todo: Sequence[int]) -> list[int]:
        """The chunk's tasks still to do, given what this experiment version already recorded.

        Resume is by (configuration, input), so one version never holds two rows for the same
        prediction. A recorded row counts as done only when it is error-free and has this task's
        identity (same predict code version, same input content: keys.py; the cache_key's format
        does not matter, so a run resumed after a template update keeps its rows). Error rows, and
        stale rows (predict() or the input changed since, e.g. between two `make dev`, or a release
        invalidated the row's identity version), are moved to the error-history table, counted in
        `summary.moved`, and recomputed; with `only_errors` (retry-errors) only error rows are.
        """
        n, summary = len(items), self.summary
        ids = [str(item.get("input_id")) for item in items]
        recorded = self.store.recorded(
            self.recorder.table, self.where, self.config_ids, [item.get("input_id") for item in items]
        )
        if not recorded:
            if self.only_errors:
                return []
            return list(todo)
        wanted = {
            (cid, iid): keys.identity(cid, digest)
            for cid in self.config_ids
            for iid, digest in zip(ids, digests, strict=True)
        }
        done: set[tuple[str, str]] = set()
        redo: dict[int, str] = {}  # rowid -> why it is recomputed
        failed_pairs: set[tuple[str, str]] = set()
        for rowid, row_code, cid, iid, digest, key_version, failed in recorded:
            pair = (cid, iid)
            if pair not in wanted:
                continue
            if failed:
                redo[rowid] = "error"
                failed_pairs.add(pair)
            elif (
                row_code == self.code
                and digest is not None
                and keys.identity(cid, digest) == wanted[pair]
                and key_version not in keys.INVALIDATED
            ):
                done.add(pair)
            elif not self.only_errors:
                redo[rowid] = "stale"
        if redo:
            moved_at = timestamp()
            table = self.recorder.table
            for reason in sorted(set(redo.values())):
                rowids = [rowid for rowid, why in redo.items() if why == reason]
                moved = self.store.move_rows(
                    table, history_table(table), rowids, {"moved_at": moved_at, "moved_because": reason}
                )
                summary.moved[reason] = summary.moved.get(reason, 0) + moved
        pairs = [(self.config_ids[t // n], ids[t % n]) for t in todo]
        if self.only_errors:
            failed_pairs -= done
            return [t for t, pair in zip(todo, pairs, strict=True) if pair in failed_pairs]
        left = [t for t, pair in zip(todo, pairs, strict=True) if pair not in done]
        resumed = len(todo) - len(left)
        summary.resumed += resumed
        if self.progress:
            self.progress.skip(resumed)
        return left

    def _cache_hits(self, items: list[dict[str, Any]], digests: list[str], todo: Sequence[int]) -> list[int]:
        """Record the chunk's tasks an earlier run computed without error as cache hits; return the others.

        The copies get the item segmentations' values computed from the items now, where the cached
        row has none (a segmentation added by `copier update` since it was computed).
        """
        n, config_ids = len(items), self.config_ids
        ids = [item.get("input_id") for item in items]
        if len(todo) == n * len(config_ids):  # the usual case: every task of the chunk
            wanted = [(cid, iid, digest) for cid in config_ids for iid, digest in zip(ids, digests, strict=True)]
        else:
            wanted = [(config_ids[t // n], ids[t % n], digests[t % n]) for t in todo]
        segments = None
        if self.segment_names:
            per_input = _chunk_segments(items, self.segment_names)
            if per_input is not None:
                segments = [per_input[t % n] for t in todo]
        hits = self.recorder.copy_cache_hits(wanted, self.code, self.prefixes, self.segment_names, segments)
        self.summary.cache_hits += len(hits)
        if self.progress:
            self.progress.skip(len(hits), cache_hits=len(hits))
        if not hits:
            return list(todo)
        if len(hits) == len(todo):
            return []
        hit = set(hits)
        return [t for position, t in enumerate(todo) if position not in hit]


def _chunk_segments(items: list[dict[str, Any]], names: tuple[str, ...]) -> list[tuple] | None:
    """Per item, its values of the segmentations (envelope.segment_value), or None when no item has any.

    Looked at one segmentation at a time in a C-speed comprehension: the usual cached chunk has no
    value for a segmentation its items lack, and then no per-task tuples are built.
    """
    columns = [
        [item.get(name) for item in items] if name != "input_length" else [segment_value(i, name) for i in items]
        for name in names
    ]
    if all(value is None for column in columns for value in column):
        return None
    return list(zip(*columns, strict=True))


def _check_invalidated(
    store: Store,
    table: str,
    chunks: Callable[[], Iterable[list[dict[str, Any]]]],
    grid: list[Any],
    code: str,
    recompute_stale: bool,
) -> None:
    """Before anything is computed: say how many of this run's tasks a release invalidated, and why.

    Those are tasks with an error-free recorded result whose identity matches but was recorded
    under an identity version this release lists in keys.INVALIDATED (and with no trusted row).
    Without `recompute_stale` the run refuses (recomputing may cost money: API calls); with it,
    the message is printed and the tasks are recomputed (rows of the resumed version are moved to
    the error-history table as `stale`, and counted in the summary). Counted chunk by chunk (each
    task is in one chunk), against the recorded identities read once (only when a release
    invalidated some: never so far).
    """
    if not keys.INVALIDATED:  # the usual case: no query, no pass over the items
        return
    config_ids = [keys.config_id(config) for config in grid]
    recorded = store.identities_by_key_version(table, code, config_ids)
    trusted = set().union(*(ids for version, ids in recorded.items() if version not in keys.INVALIDATED))
    invalid = {version: ids for version, ids in recorded.items() if version in keys.INVALIDATED}
    every_invalid = set().union(*invalid.values())
    counts = dict.fromkeys(sorted(invalid), 0)
    affected = 0
    for items in chunks():  # a pass over the items only when a release invalidated some identity version
        digests = keys.input_digests(items)
        planned = {keys.identity(cid, digest) for cid in config_ids for digest in digests} - trusted
        for version, ids in invalid.items():
            counts[version] += len(ids & planned)
        affected += len(every_invalid & planned)
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
    planner: _Planner,
    tasks: Iterator[Task],
    envelope: Envelope,
    summary: RunSummary,
    progress: Progress | None,
) -> None:
    """Execute the tasks (pulled lazily, chunk by chunk) and record them; writes what is done even when interrupted."""
    run_settings = cfg.run
    executor = get_executor(options.executor or run_settings.executor)
    policy = RetryPolicy(run_settings.max_retries, run_settings.backoff_base_seconds, run_settings.backoff_max_seconds)
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
        expected=summary.tasks,
    )
    pending = planner.pending
    try:
        if monitor is not None:
            monitor.__enter__()
        min_rows = run_settings.min_rows_for_error_stop
        for index, result in results:
            failed = bool(result.get("error"))
            summary.computed += 1
            summary.errors += failed
            summary.retries += result["retry_count"]
            config_index, digest, key = pending.pop(index)
            batch.add(config_index, result, digest, key)
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
