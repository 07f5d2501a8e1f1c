"""DuckDB analysis that works offline: `make sql`, `make duckdb`, `make recipes`, `make export`.

Template-owned. The `duckdb` wheel on PyPI ships no command-line binary, so `make duckdb` is a
small shell over the Python API: the results database is attached as `db` (the guide's
convention), statements end with `;`, results print with DuckDB's own table renderer, and dot
commands (.tables, .schema, .recipes, .recipe NAME, .quit) cover what the CLI offers for this
use. With no terminal (a pipe, or stdin closed) it runs what it reads and exits, so it never hangs.

Aggregations run inside DuckDB (never pandas), so they scale to millions of rows.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb

from .._core.config import BenchConfig
from .._storage import duck
from .._storage.store import (
    METRICS_MARKERS,
    PREDICTION_MARKERS,
    column_names,
    foreign_rows_note,
    harness_rows_sql,
    latest_version,
    quote,
)

RECIPES_FILE = Path(__file__).with_name("recipes.sql")
MAX_ROWS = 200


@dataclass(frozen=True)
class Recipe:
    """One named query of recipes.sql, with its placeholders filled."""

    name: str
    description: str
    sql: str


sqlite_columns = column_names  # the old name: store.column_names takes a database path too


def segment_columns(cfg: BenchConfig, columns: Iterable[str]) -> list[str]:
    """The column of each segmentation: `params_<name>` when it is a parameter, else `<name>`."""
    present = set(columns)
    found = []
    for name in cfg.segmentations:
        for column in (f"params_{name}", name):
            if column in present:
                found.append(column)
                break
    return found


def load_recipes(path: Path = RECIPES_FILE) -> list[Recipe]:
    """Parse `-- name: x` blocks; the comment lines right after the name are the description."""
    recipes: list[Recipe] = []
    name, description, body = None, [], []
    for line in path.read_text(encoding="utf-8").splitlines() + ["-- name: "]:
        match = re.match(r"--\s*name:\s*(\S*)", line)
        if match:
            if name and "".join(body).strip():
                recipes.append(Recipe(name, " ".join(description), "\n".join(body).strip()))
            name, description, body = match.group(1), [], []
        elif name is not None:
            if line.startswith("--") and not body:
                description.append(line.lstrip("- ").strip())
            elif not line.startswith("--"):
                body.append(line)
    return recipes


def resolve_recipes(cfg: BenchConfig, db_path: Path, version: str | None = None) -> list[Recipe]:
    """The recipes with this benchmark's tables, parameter columns and version filled in."""
    columns = sqlite_columns(db_path, cfg.predictions_table)
    params = [c for c in columns if c.startswith("params_")] or ["config_id"]
    version = version or latest_version(db_path, cfg.predictions_table) or ""
    values = {
        "{predictions}": f"db.{quote(cfg.predictions_table)}",
        "{metrics}": f"db.{quote(cfg.metrics_table)}",
        "{config}": ", ".join(quote(c) for c in params),
        "{version}": version.replace("'", "''"),
        "{harness_rows}": harness_rows_sql(columns),
        "{harness_metrics}": harness_rows_sql(sqlite_columns(db_path, cfg.metrics_table), METRICS_MARKERS),
    }
    resolved = []
    for recipe in load_recipes():
        sql = recipe.sql
        for key, value in values.items():
            sql = sql.replace(key, value)
        if "{segment}" in sql:
            for column in segment_columns(cfg, columns):
                name = (
                    f"by_{column.removeprefix('params_')}" if recipe.name == "by_segment" else f"{recipe.name}_{column}"
                )
                resolved.append(Recipe(name, recipe.description, sql.replace("{segment}", quote(column))))
        else:
            resolved.append(Recipe(recipe.name, recipe.description, sql))
    return resolved


def connect(db_path: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the database attached read-only as `db` (a clear error when it is missing)."""
    if not Path(db_path).exists():
        raise FileNotFoundError(f"{db_path} does not exist: run `make experiment` (or `make dev`) first")
    return duck.connect(db_path, read_only=True)


def split_statements(text: str) -> list[str]:
    """SQL statements of a script, split with DuckDB's own parser (quotes and comments respected)."""
    try:
        return [s.query for s in duckdb.extract_statements(text)]
    except duckdb.Error:
        return [text]  # let execution report the syntax error with DuckDB's message


def failed_sql(error: str = "error") -> str:
    """SQL: the row failed (its error is neither NULL nor empty), as the report and `make validate` count it."""
    return f"coalesce(CAST({error} AS VARCHAR), '') <> ''"


def error_breakdown_sql(source: str, group_by: Sequence[str], where: str, example: str | None = None) -> str:
    """SQL: the failed rows of `source` counted by error_type and `group_by`, most frequent first.

    The one error breakdown: `make validate` prints it (with an example message), the report shows it.
    `where` selects the failed rows (failed_sql() and the version filter).
    """
    groups = ", ".join(["error_type", *group_by])
    shown = f", any_value({example}) AS example" if example else ""
    order = ", ".join([*group_by, "error_type"])
    return (
        f"SELECT {groups}, COUNT(*) AS count{shown} FROM {source} WHERE {where} "
        f"GROUP BY {groups} ORDER BY count DESC, {order}"
    )


def print_result(con: duckdb.DuckDBPyConnection, statement: str, out: TextIO, max_rows: int = MAX_ROWS) -> None:
    """Run one statement and print its result with DuckDB's renderer (no result prints nothing)."""
    relation = con.sql(statement)
    if relation is None:
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):  # show() prints to sys.stdout; `out` may be a file
        relation.show(max_rows=max_rows, max_width=10_000)
    out.write(buffer.getvalue())
    out.flush()


def run_sql(cfg: BenchConfig, db_path: Path, query: str, out: TextIO = sys.stdout, csv: bool = False) -> int:
    """`make sql Q=...`: run a query (or `@recipe`) against the database; 1 on a SQL error."""
    version = None
    if query.startswith("@"):
        recipes = {r.name: r for r in resolve_recipes(cfg, db_path, version)}
        name = query[1:].strip()
        if name not in recipes:
            print(f"unknown recipe {name!r}: {', '.join(recipes)}", file=sys.stderr)
            return 1
        query = recipes[name].sql
    con = connect(db_path)
    try:
        for statement in split_statements(query):
            if csv:
                relation = con.sql(statement)
                if relation is not None:
                    out.write(",".join(relation.columns) + "\n")
                    for row in relation.fetchall():
                        out.write(",".join(_csv_cell(v) for v in row) + "\n")
            else:
                print_result(con, statement, out)
    except duckdb.Error as error:
        print(f"SQL error: {error}", file=sys.stderr)
        return 1
    finally:
        con.close()
    return 0


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


SHELL_HELP = """\
Statements end with ';' (they may span lines). The database is attached as `db`:
  SELECT * FROM db.{predictions} LIMIT 5;
Dot commands:
  .tables            the tables of the database
  .schema [TABLE]    columns and types
  .recipes           the recipes (the guide's queries for this benchmark)
  .recipe NAME       run a recipe
  .help              this text
  .quit              leave (Ctrl-D works too)
"""


def shell(cfg: BenchConfig, db_path: Path, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """`make duckdb`: an interactive DuckDB shell, or a script runner when stdin is not a terminal.

    Returns 1 when a statement read from a non-interactive stdin failed, so scripts notice.
    """
    interactive = stdin.isatty() if hasattr(stdin, "isatty") else False
    con = connect(db_path)
    recipes = {r.name: r for r in resolve_recipes(cfg, db_path)}
    help_text = SHELL_HELP.replace("{predictions}", cfg.predictions_table)
    if interactive:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        out.write(f"DuckDB {duckdb.__version__} shell on {db_path} (attached as db). Type .help\n")
    failed = False
    buffer: list[str] = []

    def read_line(prompt: str) -> str | None:
        if interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = stdin.readline()
        return None if line == "" else line.rstrip("\n")

    try:
        while True:
            line = read_line("D " if not buffer else "· ")
            if line is None:
                break
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                command, _, argument = stripped.partition(" ")
                if command in (".quit", ".exit", ".q"):
                    break
                ok = _dot_command(con, command, argument.strip(), recipes, help_text, out)
                failed = failed or not ok
                continue
            buffer.append(line)
            if not stripped.endswith(";"):
                continue
            script, buffer = "\n".join(buffer), []
            failed = not _run_script(con, script, out) or failed
        if buffer and "".join(buffer).strip():
            failed = not _run_script(con, "\n".join(buffer), out) or failed
    except KeyboardInterrupt:
        out.write("\n")
    finally:
        con.close()
    return 1 if failed and not interactive else 0


def _run_script(con: duckdb.DuckDBPyConnection, script: str, out: TextIO) -> bool:
    try:
        for statement in split_statements(script):
            print_result(con, statement, out)
    except duckdb.Error as error:
        out.write(f"Error: {error}\n")
        return False
    return True


def _dot_command(
    con: duckdb.DuckDBPyConnection, command: str, argument: str, recipes: dict[str, Recipe], help_text: str, out: TextIO
) -> bool:
    if command == ".help":
        out.write(help_text)
        return True
    if command == ".tables":
        return _run_script(
            con, "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'db' ORDER BY 1;", out
        )
    if command == ".schema":
        where = f" AND table_name = '{argument.replace(chr(39), '')}'" if argument else ""
        return _run_script(
            con,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            f"WHERE table_catalog = 'db'{where} ORDER BY table_name, ordinal_position;",
            out,
        )
    if command == ".recipes":
        for recipe in recipes.values():
            out.write(f"{recipe.name:<22} {recipe.description}\n")
        return True
    if command == ".recipe":
        if argument not in recipes:
            out.write(f"unknown recipe {argument!r}; .recipes lists them\n")
            return False
        out.write(recipes[argument].sql + "\n")
        return _run_script(con, recipes[argument].sql, out)
    out.write(f"unknown command {command}; .help lists them\n")
    return False


def print_recipes(cfg: BenchConfig, db_path: Path, out: TextIO = sys.stdout) -> int:
    """`make recipes`: every recipe with its SQL resolved for this database."""
    for recipe in resolve_recipes(cfg, db_path):
        out.write(f"-- {recipe.name}: {recipe.description}\n{recipe.sql}\n\n")
    return 0


def foreign_notes(cfg: BenchConfig, db_path: Path) -> list[str]:
    """The notes on rows another tool logged into the harness's tables (none when there are none)."""
    found = [
        foreign_rows_note(db_path, cfg.predictions_table),
        foreign_rows_note(db_path, cfg.metrics_table, METRICS_MARKERS),
    ]
    return [note for note in found if note]


def export(
    cfg: BenchConfig,
    db_path: Path,
    out_dir: Path,
    formats: Sequence[str] = ("parquet", "csv"),
    version: str | None = None,
) -> list[Path]:
    """`make export`: each table (or one version's rows) to Parquet and CSV, written by DuckDB's COPY.

    DuckDB streams the SQLite table to the file, so a table larger than memory exports too. A
    column whose stored values mix types (SQLite allows it) is retried with every column as text.
    """
    con = connect(db_path)
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for table in (cfg.predictions_table, cfg.metrics_table):
            columns = sqlite_columns(db_path, table)
            if not columns:
                continue
            where = ""
            if version and "experiment_version" in columns:  # one experiment: the harness's rows of it
                markers = PREDICTION_MARKERS if table == cfg.predictions_table else METRICS_MARKERS
                where = f" WHERE experiment_version = '{version.replace(chr(39), chr(39) * 2)}'"
                where += f" AND {harness_rows_sql(columns, markers)}"
            for fmt in formats:
                target = out_dir / f"{table}.{fmt}"
                option = "(FORMAT PARQUET, COMPRESSION ZSTD)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
                sql = f"COPY (SELECT * FROM db.{quote(table)}{where}) TO {duck.sql_string(str(target))} {option}"
                try:
                    con.execute(sql)
                except duckdb.Error:
                    con.execute("SET sqlite_all_varchar = true")
                    con.execute(sql)
                    con.execute("SET sqlite_all_varchar = false")
                written.append(target)
    finally:
        con.close()
    return written
