"""Per-version results files: one small SQLite file per experiment, the working database rebuilt from them.

Why: versioning the whole, growing results database with DVC stores every earlier row again at each
experiment (22 experiments of a 60,000-task benchmark used 8.3 GB of DVC cache). Each experiment now
exports only its own rows to `results/<version>.db`, a file written once and never changed, which DVC
versions on its own: what DVC stores per experiment is proportional to that experiment's rows.

`benchmark.db` stays the working database (the cache and every query use it). When it is missing
(a fresh clone), stale (another checkout's) or restored for a tag, it is rebuilt from the version
files, row for row: each table is created with the definition the working database had at the latest
export, then every file's rows are appended in version order.

SQLite, standard library only: it serves both engines (DuckDB reads the working database through its
sqlite scanner) and needs no extra dependency. Pure functions of files: no git, no DVC (layer 1).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .store import PAGE_SIZE, column_names, quote

RESULTS_FOLDER = "results"
SUFFIX = ".db"
# A version file's own metadata (its version, the working database's index definitions and column
# renames): never copied back as a table.
META_TABLE = "bench_version_file"
VERSION_COLUMN = "experiment_version"
# The working database's record of the columns renamed in place (`check-schema --rename`), in order.
# Each export copies it into its file's metadata, so a rebuild names an older file's columns as the
# working database names them now (a file is never rewritten: its columns keep their old names).
RENAMES_TABLE = "bench_renames"
Rename = tuple[str, str, str]  # (table, old column, new column)


def version_file(folder: Path, version: str) -> Path:
    """`results/<version>.db`."""
    return folder / f"{version}{SUFFIX}"


def temporary_file(target: Path) -> Path:
    """Where a file is written before its atomic rename: a hidden `*.db` (ignored by git like the others)."""
    return target.with_name(f".{target.stem}.tmp{SUFFIX}")


def _attach_read_only(con: sqlite3.Connection, path: Path, alias: str) -> None:
    con.execute(f"ATTACH DATABASE ? AS {alias}", (f"{path.resolve().as_uri()}?mode=ro",))


def _schema(con: sqlite3.Connection, schema: str, kind: str) -> list[tuple[str, str, str]]:
    """(name, table, sql) of the tables or indexes of an attached database, in creation order."""
    sql = f"SELECT name, tbl_name, sql FROM {schema}.sqlite_master WHERE type = ? AND sql IS NOT NULL ORDER BY rowid"
    return [(r[0], r[1], r[2]) for r in con.execute(sql, (kind,))]


def versioned_tables(db: Path) -> list[str]:
    """The working database's tables whose rows carry an experiment_version (predictions, metrics, error history)."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [name for name, _, _ in _schema(con, "main", "table") if not name.startswith("sqlite_")]
        return [t for t in tables if VERSION_COLUMN in column_names(con, t)]
    finally:
        con.close()


def record_rename(db: Path, table: str, old: str, new: str) -> None:
    """Add a column renamed in place in the working database `db` to its record of renames."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        _add_renames(con, [(table, old, new)])
    finally:
        con.close()


def _add_renames(con: sqlite3.Connection, renames: Sequence[Rename]) -> None:
    """Append `renames` to the database's record of renames (made on the first)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {RENAMES_TABLE} (tbl TEXT, old TEXT, new TEXT)")
    con.executemany(f"INSERT INTO {RENAMES_TABLE} VALUES (?, ?, ?)", renames)


def export_version(db: Path, version: str, target: Path) -> dict[str, int]:
    """Write `version`'s rows of every versioned table of `db` to `target`; {table: rows}.

    Written to a temporary file, then renamed: `target` is either absent or complete, so a killed
    export is simply redone. Each table keeps the working database's exact definition (column order
    and types), so a rebuild gives back identical rows; index definitions go in the metadata table.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(target)
    tmp.unlink(missing_ok=True)
    tables = versioned_tables(db)
    counts: dict[str, int] = {}
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        _attach_read_only(con, db, "src")
        con.execute("BEGIN")
        con.execute(f"CREATE TABLE {META_TABLE} (kind TEXT, name TEXT, tbl_name TEXT, sql TEXT)")
        con.execute(f"INSERT INTO {META_TABLE} VALUES ('version', ?, NULL, NULL)", (version,))
        source_tables = _schema(con, "src", "table")
        for name, _, sql in source_tables:
            if name in tables:
                con.execute(sql)
                cursor = con.execute(
                    f"INSERT INTO main.{quote(name)} SELECT * FROM src.{quote(name)} "
                    f"WHERE {VERSION_COLUMN} = ? ORDER BY rowid",
                    (version,),
                )
                counts[name] = cursor.rowcount
        for name, table, sql in _schema(con, "src", "index"):
            if table in tables:
                con.execute(f"INSERT INTO {META_TABLE} VALUES ('index', ?, ?, ?)", (name, table, sql))
        if RENAMES_TABLE in {name for name, _, _ in source_tables}:
            con.execute(
                f"INSERT INTO {META_TABLE} SELECT 'rename', old, tbl, new FROM src.{RENAMES_TABLE} ORDER BY rowid"
            )
        con.execute("COMMIT")
        con.execute("DETACH DATABASE src")
    finally:
        con.close()
    os.replace(tmp, target)
    return counts


def file_version(path: Path) -> str:
    """The version a results file holds (its name without `.db`)."""
    return path.name[: -len(SUFFIX)]


def rebuild(
    files: Sequence[Path] | Mapping[str, Path], target: Path, order: Callable[[str], Any] | None = None
) -> dict[str, int]:
    """The working database from version files (sorted by `order` of their versions); {table: rows}.

    `files` are results/<version>.db paths, or {version: path} (a DVC cache object has no version name).
    The latest file that has a table gives its definition (the working database's, at that export).
    A column renamed in place after a file was exported (its metadata lists fewer renames than the
    longest list) takes its new name, as in the working database; a column an older file has and the
    latest lacks, renamed without that record (before it existed), is added, not dropped, so nothing
    is lost: the schema check then names the rename. Built in a temporary file, then renamed.
    """
    named = dict(files) if isinstance(files, Mapping) else {file_version(p): p for p in files}
    ordered = [named[v] for v in sorted(named, key=order)]
    tmp = temporary_file(target)
    tmp.unlink(missing_ok=True)
    definitions: dict[str, str] = {}
    indexes: dict[str, str] = {}
    renames_known: dict[Path, list[Rename]] = {}
    for path in ordered:  # later files win: the newest definition of each table and index
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            definitions.update({n: sql for n, _, sql in _schema(con, "main", "table") if n != META_TABLE})
            indexes.update(dict(con.execute(f"SELECT name, sql FROM {META_TABLE} WHERE kind = 'index'").fetchall()))
            renames_known[path] = _renames(con)
        finally:
            con.close()
    history = max(renames_known.values(), key=len, default=[])  # every file's list is a beginning of it
    counts = dict.fromkeys(definitions, 0)
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute(f"PRAGMA page_size={PAGE_SIZE}")  # the working database's, as a run creates it
        con.execute("BEGIN")
        for sql in definitions.values():
            con.execute(sql)
        if history:
            _add_renames(con, history)
        con.execute("COMMIT")
        for path in ordered:
            _attach_read_only(con, path, "src")
            con.execute("BEGIN")
            for name, _, _ in _schema(con, "src", "table"):
                if name != META_TABLE:
                    counts[name] += _append(con, name, history[len(renames_known[path]) :])
            con.execute("COMMIT")
            con.execute("DETACH DATABASE src")
        for sql in indexes.values():
            con.execute(sql)
    finally:
        con.close()
    os.replace(tmp, target)
    return counts


def _renames(con: sqlite3.Connection) -> list[Rename]:
    """The renames a version file's metadata lists (those done before its export), in order."""
    sql = f"SELECT tbl_name, name, sql FROM {META_TABLE} WHERE kind = 'rename' ORDER BY rowid"
    return [(r[0], r[1], r[2]) for r in con.execute(sql)]


def current_name(table: str, column: str, renames: Sequence[Rename]) -> str:
    """What `column` of `table` is called after `renames` (in order: a -> b, then b -> c, is a -> c)."""
    for renamed_table, old, new in renames:
        if renamed_table == table and column == old:
            column = new
    return column


def _append(con: sqlite3.Connection, table: str, renames: Sequence[Rename] = ()) -> int:
    """Append src.<table>'s rows to main.<table> by column name, in rowid order, its columns named after
    `renames`. Two that end under one name are merged as `check-schema --rename` merges them: the value of
    the column that had the name already, else the renamed one's."""
    have = set(column_names(con, table))
    merged: dict[str, list[str]] = {}
    declared_as: dict[str, str] = {}
    for _, column, declared, *_ in con.execute(f"PRAGMA src.table_info({quote(table)})").fetchall():
        name = current_name(table, column, renames)
        merged.setdefault(name, []).append(column)
        declared_as.setdefault(name, declared or "")
    for name, declared in declared_as.items():
        if name not in have:
            con.execute(f"ALTER TABLE main.{quote(table)} ADD COLUMN {quote(name)} {declared}".rstrip())
    values = []
    for name, columns in merged.items():
        ranked = [quote(c) for c in sorted(columns, key=lambda c: c != name)]
        values.append(ranked[0] if len(ranked) == 1 else f"COALESCE({', '.join(ranked)})")
    names = ", ".join(quote(name) for name in merged)
    cursor = con.execute(
        f"INSERT INTO main.{quote(table)} ({names}) SELECT {', '.join(values)} FROM src.{quote(table)} ORDER BY rowid"
    )
    return cursor.rowcount
