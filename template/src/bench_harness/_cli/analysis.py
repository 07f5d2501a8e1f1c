"""The analysis subcommands of `bench`: inspect, validate, sql, duckdb, recipes, export, report, rescore.

Template-owned. Kept apart from cli.py (which runs experiments) so that neither grows unreadable;
cli.build_parser calls `add_parsers`. Every command reads the database only, except rescore,
which adds columns and metrics rows and never changes a recorded value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .._core.config import BenchConfig

Command = Callable[[argparse.Namespace, BenchConfig], int]


def _db(args: argparse.Namespace, cfg: BenchConfig, dev_default: bool = False) -> Path:
    """--db wins; then --dev / --experiment; then the command's default database."""
    if getattr(args, "db", None):
        return Path(args.db)
    if getattr(args, "experiment", False):
        return cfg.db_path
    if getattr(args, "dev", False) or dev_default:
        return cfg.dev_db_path
    return cfg.db_path


def _experiment_db(args: argparse.Namespace, cfg: BenchConfig) -> Path:
    """`_db`, and a missing experiment database (a fresh clone) rebuilt from its version files first.

    Notes go to stderr: `make sql ARGS=--csv` output stays clean. A failed rebuild is reported and the
    command goes on (it then names the missing database as before).
    """
    db = _db(args, cfg)
    if db.resolve() != cfg.db_path.resolve() or db.exists():
        return db
    from .._versioning import versioning

    try:
        lines = versioning.rebuild_if_missing(cfg)
    except versioning.VersioningError as error:
        lines = [f"{db.name} is missing and could not be rebuilt: {error}"]
    if lines:
        print("\n".join(lines), file=sys.stderr)
    return db


def cmd_inspect(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Inspect the development results (the guide's data inspection); exit 1 on an issue."""
    from .._checks.inspection import inspect

    db = _db(args, cfg, dev_default=True)
    if not db.exists():
        print(f"{db.name} does not exist: run `make dev` first (or `make inspect ARGS=--experiment`)", file=sys.stderr)
        return 1
    return 1 if inspect(db, args.table or cfg.predictions_table, args.n) else 0


def cmd_validate(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Validate an experiment's results: duplicates, NULL params, errors, cache; exit 1 on an issue."""
    from .._checks.validate import validate

    db = _experiment_db(args, cfg)
    if not db.exists():
        print(f"{db.name} does not exist: run `make experiment` first", file=sys.stderr)
        return 1
    return 1 if validate(cfg, db, args.version, args.all) else 0


def cmd_sql(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Run SQL (or @recipe) with DuckDB; the database is attached as `db`."""
    from .._results.analysis import run_sql

    if not args.query.strip():
        print(
            'usage: make sql Q="SELECT ... FROM db.<table>"  (or Q=@by_config; `make recipes` lists them)',
            file=sys.stderr,
        )
        return 2
    return run_sql(cfg, _experiment_db(args, cfg), args.query, csv=args.csv)


def cmd_duckdb(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """A DuckDB shell on the results (no network, no duckdb binary needed); reads a script from a pipe."""
    from .._results.analysis import shell

    return shell(cfg, _experiment_db(args, cfg))


def cmd_recipes(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Print the recipes (the guide's analysis queries) resolved for this benchmark."""
    from .._results.analysis import print_recipes

    return print_recipes(cfg, _experiment_db(args, cfg))


def cmd_export(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Export both tables to Parquet and CSV with DuckDB's COPY (streamed, any size)."""
    from .._results.analysis import export, foreign_notes

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    db = _experiment_db(args, cfg)
    for path in export(cfg, db, cfg.root / args.out, formats, args.version):
        print(path.relative_to(cfg.root) if path.is_relative_to(cfg.root) else path)
    for note in foreign_notes(cfg, db):  # every row is exported; one version (--version) only the harness's
        print(f"note: {note.replace('ignored here', 'exported as stored' if not args.version else 'left out')}")
    return 0


def _previous(cfg: BenchConfig, args: argparse.Namespace) -> object | None:
    """The comparison with the experiment before the reported one (`make compare`'s), or None."""
    from .._compare.model import CompareError, compare
    from .._core.env import ToolError

    if args.dev or getattr(args, "db", None):
        return None
    try:
        return compare(cfg, None, args.version)
    except (CompareError, ToolError):  # no earlier experiment, or no git: the report has no comparison
        return None


def cmd_report(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """reports/<version>/RESULTS.md and report.html: CIs, paired tests, segments, Pareto, disagreements."""
    from .._report import write

    try:
        markdown, html = write(cfg, _experiment_db(args, cfg), cfg.root / args.out, args.version, _previous(cfg, args))
    except (FileNotFoundError, ValueError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    for path in (markdown, html):
        print(path.relative_to(cfg.root) if path.is_relative_to(cfg.root) else path)
    from .._storage.store import foreign_rows_note

    foreign = foreign_rows_note(_db(args, cfg), cfg.predictions_table)
    if foreign:
        print(f"note: {foreign}")
    return 0


def cmd_rescore(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Re-apply scoring.parse_prediction to the stored rows (no predict call): new column + metrics rows."""
    from .._results.rescore import rescore
    from .._versioning import versioning
    from .table import format_table, metrics_columns

    db = _experiment_db(args, cfg)
    try:  # one writer of the database and of results/ at a time: never beside a running experiment
        lock = versioning.ExperimentLock(cfg).acquire() if versioning.uses_dvc(cfg) else None
    except versioning.VersioningError as error:
        print(f"rescore refused: {error}", file=sys.stderr)
        return 2
    try:
        done = rescore(cfg, db, args.version)
        recorded = versioning.rescored_results(cfg, db, done["version"])
    except ValueError as error:
        print(f"rescore: {error}", file=sys.stderr)
        return 1
    except versioning.VersioningError as error:  # the database is rescored; its results file is not yet
        print(f"rescore: {error}\n  run `make rescore` again once that is fixed", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.release()
    print(
        f"{done['version']}: {done['rows']} rows re-scored with {done['scorer_version']}, "
        f"{done['changed']} predictions differ from the recorded ones (column scored_prediction)"
    )
    rows = done["metrics"]
    print(format_table(rows, metrics_columns(rows, cfg)))
    if recorded:
        print("\n".join(recorded))
    return 0


COMMANDS: dict[str, Command] = {
    "inspect": cmd_inspect,
    "validate": cmd_validate,
    "sql": cmd_sql,
    "duckdb": cmd_duckdb,
    "recipes": cmd_recipes,
    "export": cmd_export,
    "report": cmd_report,
    "rescore": cmd_rescore,
}


def _database_flags(p: argparse.ArgumentParser, dev_default: bool = False) -> None:
    p.add_argument("--db", default=None, help="a database file (default: benchmark.toml's)")
    if dev_default:
        p.add_argument("--experiment", action="store_true", help="the experiment database instead of the dev one")
    else:
        p.add_argument("--dev", action="store_true", help="the development database")


def add_parsers(sub: argparse._SubParsersAction, registry: dict[str, Command]) -> None:
    """Register the analysis subcommands on `bench`'s parser and in its command table."""
    registry.update(COMMANDS)
    p = sub.add_parser("inspect", help=cmd_inspect.__doc__)
    _database_flags(p, dev_default=True)
    p.add_argument("--table", default=None, help="a table (default: the predictions table)")
    p.add_argument("-n", type=int, default=10, help="sample rows to show")
    p = sub.add_parser("validate", help=cmd_validate.__doc__)
    _database_flags(p)
    p.add_argument("--version", default=None, help="an experiment version (default: the latest)")
    p.add_argument("--all", action="store_true", help="every version")
    p = sub.add_parser("sql", help=cmd_sql.__doc__)
    p.add_argument("query", help="SQL, or @<recipe>")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    _database_flags(p)
    _database_flags(sub.add_parser("duckdb", help=cmd_duckdb.__doc__))
    _database_flags(sub.add_parser("recipes", help=cmd_recipes.__doc__))
    p = sub.add_parser("export", help=cmd_export.__doc__)
    _database_flags(p)
    p.add_argument("--out", default="exports", help="folder (default: exports/)")
    p.add_argument("--format", default="parquet,csv", help="parquet,csv (default: both)")
    p.add_argument("--version", default=None, help="one experiment version only (default: every row)")
    for name in ("report", "rescore"):
        p = sub.add_parser(name, help=COMMANDS[name].__doc__)
        _database_flags(p)
        p.add_argument("--version", default=None, help="an experiment version (default: the latest)")
        if name == "report":
            p.add_argument("--out", default="reports", help="folder (default: reports/)")
