"""`bench`: the command line behind the Makefile targets.

Template-owned. Never prompts: every decision is a flag, so it runs the same with no terminal.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._core.config import BenchConfig, load_config
from .._core.datafiles import DataError
from .._results import metrics as metrics_mod
from .._run import runner
from .._run.executors import EXECUTORS, StaleWorkerCodeError
from .errors import plain_message
from .table import format_table, metrics_columns

COMMANDS: dict[str, Callable[[argparse.Namespace, BenchConfig], int]] = {}


def command(name: str) -> Callable:
    def register(func: Callable[[argparse.Namespace, BenchConfig], int]) -> Callable:
        COMMANDS[name] = func
        return func

    return register


def _run_options(args: argparse.Namespace, phase: str) -> runner.RunOptions:
    return runner.RunOptions(
        phase=phase,
        limit=args.limit,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        use_cache=False if args.no_cache else None,
        show_progress=not args.quiet,
        recompute_stale=getattr(args, "recompute_stale", False),
    )


def run_and_report(
    cfg: BenchConfig, options: runner.RunOptions, db_path: Any = None
) -> tuple[int, runner.RunSummary, list]:
    """Run, log the metrics rows, print them; exit code 3 when the run stopped early."""
    try:
        summary = runner.run(cfg, options)
    except runner.StaleResultsError as error:
        print(f"REFUSED: {error}", file=sys.stderr)
        return 2, runner.RunSummary(options.experiment_version or "", options.phase), []
    except StaleWorkerCodeError as error:  # Dask workers on other code: their rows were refused, the rest kept
        print(error, file=sys.stderr)
        return 2, runner.RunSummary(options.experiment_version or "", options.phase), []
    moved = ", ".join(f"{count} {reason}" for reason, count in sorted(summary.moved.items()))
    print(
        f"{summary.experiment_version}: {summary.tasks} tasks, {summary.computed} computed, "
        f"{summary.cache_hits} cache hits, {summary.resumed} already recorded, {summary.errors} errors, "
        f"{summary.retries} retries in {summary.seconds:.1f}s"
        + (f"; rows moved to {cfg.predictions_table}_error_history before recomputing: {moved}" if moved else "")
    )
    if summary.stopped_early:
        print(
            f"STOPPED EARLY: {summary.stop_reason}. Fix predict() or the data, then re-run: finished rows are kept.",
            file=sys.stderr,
        )
        return 3, summary, []
    from .._core.env import fault_point

    fault_point("run")  # crash tests: rows recorded, metrics not yet
    rows = metrics_mod.log_metrics(cfg, summary, db_path)
    print(format_table(rows, metrics_columns(rows, cfg)))
    return 0, summary, rows


@command("experiment")
def cmd_experiment(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """The experiment phase: preflight, the whole dataset, metrics, then versioned (commit + tag)."""
    from .._versioning import versioning

    def execute(version: str) -> tuple[int, list]:
        options = _run_options(args, "experiment")
        options.experiment_version = version
        code, _, rows = run_and_report(cfg, options)
        from .._core.env import fault_point

        fault_point("metrics")  # crash tests: metrics recorded, not yet versioned
        return code, rows

    options = _experiment_options(args)
    options.force_tag = args.force_tag
    options.check_unchanged = args.limit is None and not args.no_cache
    return versioning.run_experiment(cfg, options, execute)


def _experiment_options(args: argparse.Namespace) -> Any:
    """Pre-experiment flags -> versioning.ExperimentOptions (bad --rename values exit with a message)."""
    from .._checks import schema
    from .._versioning import versioning

    try:
        renames = [schema.parse_rename(text) for text in args.rename or ()]
    except ValueError as error:
        raise SystemExit(str(error)) from error
    return versioning.ExperimentOptions(
        allow_dirty=args.allow_dirty,
        allow_schema_change=args.allow_schema_change,
        renames=renames,
        message=getattr(args, "message", "") or "",
        name=getattr(args, "name", "") or "",
        push=not getattr(args, "no_push", False),
    )


@command("preflight")
def cmd_preflight(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Pre-experiment validation only: schema drift, code changes, uncommitted work (exit 2 if refused)."""
    from .._versioning import versioning

    if not versioning.run_preflight(cfg, _experiment_options(args)):
        return 2
    print("preflight: ok, `make experiment` would run")
    return 0


@command("check-schema")
def cmd_check_schema(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Schema drift between params.Params and the recorded tables; --rename old=new fixes it in place."""
    from .._checks import schema

    try:
        renames = [schema.parse_rename(text) for text in args.rename or ()]
    except ValueError as error:
        raise SystemExit(str(error)) from error
    for line in schema.apply_renames(cfg, renames):
        print(line)
    errors, notes = schema.report(schema.check(cfg), cfg.db_path.name)
    print("\n".join(notes))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    return 0


@command("experiments")
def cmd_experiments(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """The experiment tags with their messages, sorted as versions."""
    from .._versioning import versioning

    print(versioning.list_experiments(cfg))
    return 0


def _versioning_step(step: Callable[[], str | Sequence[str]], failure_prefix: str = "") -> int:
    """Print what a git/DVC step did (exit 0), or why it refused, on stderr (exit 1)."""
    from .._versioning.versioning import VersioningError

    try:
        done = step()
    except VersioningError as error:
        print(f"{failure_prefix}{error}", file=sys.stderr)
        return 1
    print(done if isinstance(done, str) else "\n".join(done))
    return 0


@command("reproduce")
def cmd_reproduce(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Check out an experiment tag and restore its data and database with DVC."""
    from .._versioning import versioning

    return _versioning_step(lambda: versioning.reproduce(cfg, args.tag), f"reproduce {args.tag}: ")


@command("rebuild-db")
def cmd_rebuild_db(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Rebuild the working database from results/<version>.db (DVC-restored): a missing or stale one."""
    from .._versioning import versioning

    return _versioning_step(lambda: versioning.rebuild_database(cfg), "rebuild-db: ")


@command("push")
def cmd_push(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Push data and results to the DVC remote."""
    from .._versioning import versioning

    return _versioning_step(lambda: versioning.push(cfg))


@command("dvc-setup")
def cmd_dvc_setup(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """DVC for data/ and results (standard/maximum versioning): init, remote, data.dvc."""
    from .._versioning import versioning

    return _versioning_step(lambda: versioning.setup_dvc(cfg))


@command("guard-data")
def cmd_guard_data(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """pre-commit: refuse data and database files in git (they go to DVC)."""
    from .._versioning import versioning

    problems = versioning.guard(cfg, args.files)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


@command("run")
def cmd_run(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Run and log metrics only: no pre-experiment checks, no commit, no tag (tests, scripts)."""
    options = _run_options(args, "experiment")
    options.experiment_version = args.experiment_version
    code, _, _ = run_and_report(cfg, options)
    return code


@command("retry-errors")
def cmd_retry_errors(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Re-run only the error rows of an experiment version (default: the latest), then its metrics."""
    version = args.experiment_version or runner.latest_version(cfg)
    if version is None:
        print("no experiment recorded yet: run `make experiment`")
        return 1
    options = _run_options(args, "experiment")
    options.experiment_version, options.only_errors = version, True
    code, _, _ = run_and_report(cfg, options)
    return code


@command("dev")
def cmd_dev(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """The development phase: a small subset into the dev database (deleted by clean-dev)."""
    dev = cfg.for_dev()
    options = _run_options(args, "dev")
    options.limit = args.limit if args.limit is not None else cfg.run.dev_limit
    code, _, rows = run_and_report(dev, options)
    print(f"dev results in {dev.db_path.name}; `make clean-dev` deletes them")
    from .._cli.compare import design_note

    for line in design_note(cfg, rows):
        print(line)
    return code


@command("clean-dev")
def cmd_clean_dev(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Delete the development database (the experiment database is never touched)."""
    removed = [p for p in (cfg.dev_db_path, cfg.dev_db_path.with_name(cfg.dev_db_path.name + "-journal")) if p.exists()]
    for path in removed:
        path.unlink()
    print(f"removed {', '.join(p.name for p in removed)}" if removed else "no dev database to remove")
    return 0


@command("prepare-data")
def cmd_prepare_data(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Write the data in the answered format at data_path: the bundled sample, or after data_format changed."""
    from .._core.datafiles import convert, convertible_source

    source = convertible_source(cfg.data_path)
    target = cfg.data_path.relative_to(cfg.root) if cfg.data_path.is_relative_to(cfg.root) else cfg.data_path
    if cfg.data_path.exists() or source is None:
        print(f"{target} is in place")
        return 0
    convert(source, cfg.data_path)
    if source.name == "sample.jsonl" and source.parent == cfg.root / "data":
        source.unlink()  # the bundled sample, written at copy time: it now lives in the answered format
        print(f"sample data written to {target}")
    else:
        print(f"{source.name} converted to {target}; {source.name} is kept: remove it once you have checked {target}")
    return 0


@command("setup-duckdb")
def cmd_setup_duckdb(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Install DuckDB's sqlite extension from the duckdb-ext-sqlite wheel (offline; for `xt --engine duckdb`)."""
    from .._storage.duck import ensure_sqlite_extension

    ensure_sqlite_extension()
    return 0


@command("metrics")
def cmd_metrics(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Print the metrics table (the latest run, or --all)."""
    from .._storage.store import METRICS_MARKERS, Store, foreign_rows_note, harness_rows_sql, quote

    with Store(cfg.db_path) as store:
        if not store.has_table(cfg.metrics_table):
            print("no metrics yet: run `make experiment`")
            return 1
        own = harness_rows_sql(store.columns(cfg.metrics_table), METRICS_MARKERS)  # not rows other tools logged
        rows = store.query_dicts(f"SELECT * FROM {quote(cfg.metrics_table)} WHERE {own} ORDER BY rowid")
    if rows and not args.all:
        latest = runner.latest_version(cfg) or rows[-1]["experiment_version"]
        rows = [r for r in rows if r["experiment_version"] == latest]
    print(format_table(rows, metrics_columns(rows, cfg)))
    foreign = foreign_rows_note(cfg.db_path, cfg.metrics_table, METRICS_MARKERS)
    if foreign:
        print(f"note: {foreign}")
    return 0


def _add_preflight_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-dirty", action="store_true", help="run with uncommitted changes (recorded git_dirty=1)")
    p.add_argument("--allow-schema-change", action="store_true", help="keep probable renames as new columns")
    p.add_argument("--rename", action="append", metavar="OLD=NEW", help="rename a params_ column before the run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("experiment", "run", "dev", "retry-errors"):
        p = sub.add_parser(name, help=COMMANDS[name].__doc__)
        if name in ("run", "retry-errors"):
            help_text = "the rows' version (run: next e* tag; retry-errors: the latest)"
            p.add_argument("--experiment-version", default=None, help=help_text)
        p.add_argument("--limit", type=int, default=None, help="run on the first N items only")
        p.add_argument("--executor", choices=list(EXECUTORS), default=None, help="override benchmark.toml's executor")
        p.add_argument("--workers", type=int, default=None, help="threads/processes/dask workers")
        p.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
        p.add_argument("--no-cache", action="store_true", help="recompute even what is cached")
        p.add_argument(
            "--recompute-stale",
            action="store_true",
            help="recompute the results a template release invalidated (the run refuses and says how many without it)",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "experiment":
            _add_preflight_flags(p)
            p.add_argument("--message", default="", help="the tag message (default: generated from the results)")
            p.add_argument("--name", default="", help="maximum versioning: branch experiment/<name> (default: version)")
            p.add_argument("--no-push", action="store_true", help="do not `dvc push` after tagging")
            p.add_argument("--force-tag", action="store_true", help="record a new experiment even when nothing changed")
    _add_preflight_flags(sub.add_parser("preflight", help=COMMANDS["preflight"].__doc__))
    p = sub.add_parser("check-schema", help=COMMANDS["check-schema"].__doc__)
    p.add_argument("--rename", action="append", metavar="OLD=NEW", help="rename a params_ column in place")
    sub.add_parser("experiments", help=COMMANDS["experiments"].__doc__)
    p = sub.add_parser("reproduce", help=COMMANDS["reproduce"].__doc__)
    p.add_argument("tag", help="an experiment tag, e.g. e0.0.1")
    sub.add_parser("push", help=COMMANDS["push"].__doc__)
    sub.add_parser("rebuild-db", help=COMMANDS["rebuild-db"].__doc__)
    sub.add_parser("dvc-setup", help=COMMANDS["dvc-setup"].__doc__)
    p = sub.add_parser("guard-data", help=COMMANDS["guard-data"].__doc__)
    p.add_argument("files", nargs="*")
    sub.add_parser("clean-dev", help=COMMANDS["clean-dev"].__doc__)
    sub.add_parser("prepare-data", help=COMMANDS["prepare-data"].__doc__)
    sub.add_parser("setup-duckdb", help=COMMANDS["setup-duckdb"].__doc__)
    p = sub.add_parser("metrics", help=COMMANDS["metrics"].__doc__)
    p.add_argument("--all", action="store_true", help="every run, not only the latest")
    # inspect, validate, sql, duckdb, recipes, export, report, rescore
    from .._cli.analysis import add_parsers
    from .._cli.explore import add_parsers as add_explore_parsers

    add_explore_parsers(sub, COMMANDS)

    add_parsers(sub, COMMANDS)
    from .._cli.compare import add_parser as add_compare

    add_compare(sub, COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = load_config()
        return COMMANDS[args.command](args, cfg)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (runner.py): the finished rows are recorded
        print(f"bench {args.command}: interrupted; finished rows are recorded, run it again to resume", file=sys.stderr)
        return 130
    except (DataError, OSError, sqlite3.Error) as error:
        message = plain_message(error)
        if message is None:
            raise
        print(f"bench {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
