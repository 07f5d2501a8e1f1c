"""The results database: xetrack-compatible tables written fast by a single writer.

Template-owned. The file is SQLite, exactly as xetrack writes it (its DuckDB engine ATTACHes
SQLite too), so `xetrack.Reader`, `xt` and DuckDB read it. A run's predictions are written in
batches by `RunRecorder` (other tables by `Store.insert`, one `executemany`) instead of xetrack's
per-row `track()` (about 1 ms a row): xetrack's column conventions are kept (`track_id`,
`timestamp`, `function_name`, `function_time`, `cache`, `params_<field>`), and columns are added
as new keys appear.

The predictions table is also the cache: a computed, error-free row is found again by its
identity's components (code_version, config_id, input_digest), stable across processes and
releases (see keys.py), not by the text of its `cache_key`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from .._core.env import version_key
from . import keys

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # xetrack's
BASE_COLUMNS = ("track_id", "timestamp")  # every table's first columns, as xetrack's (TEXT)
# Indexes by the columns they need: the cache looks computed, error-free rows up by their identity
# (configuration, code version, input digest), all read from the index; resume, metrics and
# retry-errors read one experiment version. Every index slows each insert, and an index led by a
# random digest would cost 40% of the write throughput, while these grow mostly at their end
# (input_id before input_digest: rows are written in input order). The cache's index is partial:
# cache-hit and error rows are never looked up, so they are not in it.
CACHE_ROWS = "cache = '' AND error IS NULL"
INDEXES: dict[str, tuple[tuple[str, ...], str]] = {
    "identity": (("config_id", "code_version", "input_id", "input_digest"), CACHE_ROWS),
    "version": (("experiment_version", "config_id", "input_id"), ""),
}
# Replaced: "computed" by "cached", "cached" (which matched on the cache_key text) by "identity".
RETIRED_INDEXES = ("computed", "cached")
# The columns the cache matches on (keys.py), and the version of their definition.
IDENTITY_COLUMNS = ("config_id", "code_version", "input_digest")
KEY_VERSION_COLUMN = "cache_key_version"

# Pages of a database the harness creates (the run's, a rebuilt one): 64 KiB, not SQLite's 4 KiB. A run
# appends thousands of wide rows per commit; with large pages a commit writes fewer pages and b-tree
# cells (benchmarks/run_all.py: a fully cached re-run of 20,000 rows 190 -> 170 ms, a first run
# 298 -> 246 ms). The cost is a larger empty database (a page per table and index).
PAGE_SIZE = 65536

# Cell types SQLite binds as they are (NaN floats are stored as NULL by SQLite itself).
_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})


_SECOND: tuple[int, str] = (-1, "")  # the last whole second, and its text


def timestamp() -> str:
    """Now, in xetrack's format (local time, microseconds).

    Called once per recorded row: the date and time are formatted once per second, only the
    microseconds for each call (datetime.now() alone costs several microseconds).
    """
    global _SECOND
    now = time.time()
    second = int(now)
    cached = _SECOND  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        cached = _SECOND = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
    return f"{cached[1]}.{int((now - second) * 1_000_000):06d}"


def history_table(table: str) -> str:
    """Where error rows go when they are recomputed (resume or retry-errors): nothing is lost."""
    return f"{table}_error_history"


def quote(identifier: str) -> str:
    """Quote a table or column name for SQL (names come from answers validated as identifiers)."""
    return '"' + identifier.replace('"', '""') + '"'


def equals_clause(where: dict[str, Any]) -> str:
    """`where`'s columns as an SQL condition, each `= ?` (bind `where.values()`); all rows when empty."""
    return " AND ".join(f"{quote(k)} = ?" for k in where) or "1=1"


def column_types(con: sqlite3.Connection, table: str) -> dict[str, str]:
    """Column name -> declared type, in storage order (empty when the table does not exist).

    The harness's one reader of a table's columns: the helpers below and Store.columns use it.
    """
    return {row[1]: row[2] for row in con.execute(f"PRAGMA table_info({quote(table)})")}


def column_names(source: sqlite3.Connection | Path | str, table: str) -> list[str]:
    """The table's columns in storage order, on an open connection or a database file (read-only).

    Empty when the database file or the table does not exist.
    """
    if isinstance(source, sqlite3.Connection):
        return list(column_types(source, table))
    if not Path(source).exists():
        return []
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as con:
        return list(column_types(con, table))


# The columns every row the harness writes fills. A row without one of them was logged by something
# else in the same table (xetrack's own `Tracker(db, table=...).log()`/`.track()`, a hand INSERT):
# analysis ignores it, says how many there are, and never picks an experiment from it.
PREDICTION_MARKERS = ("config_id", "cache_key", "experiment_version")
METRICS_MARKERS = ("config_id", "experiment_version")
FOREIGN_ROWS_NOTE = (
    "{n} rows not written by the harness (e.g. xetrack Tracker logs): ignored here; keep them in a table of their own"
)


def harness_rows_sql(columns: Sequence[str] | set[str], markers: Sequence[str] = PREDICTION_MARKERS) -> str:
    """SQL (SQLite and DuckDB): the row was written by the harness (FALSE when the table lacks a marker column)."""
    present = set(columns)
    if not set(markers) <= present:
        return "FALSE"
    return "(" + " AND ".join(f"{quote(name)} IS NOT NULL" for name in markers) + ")"


def foreign_rows(db_path: Path | str, table: str, markers: Sequence[str] = PREDICTION_MARKERS) -> int:
    """How many rows of `table` the harness did not write (0 when the database or table is missing)."""
    columns = column_names(db_path, table)
    if not columns:
        return 0
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as con:
        sql = f"SELECT COUNT(*) FROM {quote(table)} WHERE NOT {harness_rows_sql(columns, markers)}"
        return int(con.execute(sql).fetchone()[0])


def foreign_rows_note(db_path: Path | str, table: str, markers: Sequence[str] = PREDICTION_MARKERS) -> str | None:
    """The one-line note commands print about rows not written by the harness, or None when there are none."""
    n = foreign_rows(db_path, table, markers)
    return FOREIGN_ROWS_NOTE.format(n=n) + f" (table {table})" if n else None


def latest_version(db_path: Path | str, table: str, phase: str | None = None) -> str | None:
    """The most recent experiment version among the harness's own rows (config_id and cache_key set).

    Versions named like the experiment tags (e<major>.<minor>.<patch>) are ordered by number and
    come after any other name; other names by when their first row was written. Not by rowid: a
    `retry-errors` of an old version writes new rows for it, which must not make it the latest.
    `phase` keeps one phase's rows (the runner asks for "experiment").
    """
    columns = set(column_names(db_path, table))
    if "experiment_version" not in columns:
        return None
    conditions = [harness_rows_sql(columns)]
    parameters: list[Any] = []
    if phase is not None:
        if "phase" not in columns:
            return None
        conditions.append("phase = ?")
        parameters.append(phase)
    first = "MIN(timestamp)" if "timestamp" in columns else "MIN(rowid)"
    sql = f"SELECT experiment_version, {first} FROM {quote(table)} WHERE {' AND '.join(conditions)} GROUP BY 1"
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as con:
        versions = con.execute(sql, parameters).fetchall()
    return max(versions, key=_version_order)[0] if versions else None


def _version_order(row: tuple[str, Any]) -> tuple:
    """Tag-like versions by number, after the others; the others by their first row."""
    version, first = row
    tag = version_key(version)
    return (1, tag, "") if tag != (-1,) else (0, (), str(first))


def sql_type(value: Any) -> str:
    """The declared type xetrack would give this value (bool is stored as INTEGER)."""
    if isinstance(value, bool) or isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, (bytes, bytearray)):
        return "BLOB"
    return "TEXT"


def to_cell(value: Any) -> Any:
    """A value SQLite stores as-is: containers become JSON text, NaN becomes NULL."""
    if value is None or isinstance(value, (str, int, bytes)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=_json_default)
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalar
        return to_cell(value.item())
    if hasattr(value, "tolist"):
        return json.dumps(value.tolist())
    return str(value)


def _json_default(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


def to_tuples(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[tuple]:
    """Rows as tuples in `keys` order, converting only the columns that hold non-plain values.

    One pass over the cells (in C) finds whether any needs converting; if one does, the rows are
    transposed and `to_cell` is called only for the columns that hold a list, a dict or a numpy
    value, instead of for every cell of every row.
    """
    return plain_cells([tuple(map(row.get, keys)) for row in rows])


def _by_columns(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[tuple]]:
    """Rows grouped by their keys (in order), as value tuples: one INSERT statement per group.

    Rows written together (a run's metrics rows) nearly all have the same keys in the same order,
    so this is usually one group, built without looking any key up.
    """
    groups: dict[tuple[str, ...], list[tuple]] = {}
    for row in rows:
        keys = tuple(row)
        group = groups.get(keys)
        if group is None:
            group = groups[keys] = []
        group.append(tuple(row.values()))
    return groups


def plain_cells(values: list[tuple]) -> list[tuple]:
    """`values` with every cell SQLite cannot bind (lists, dicts, numpy values) converted by `to_cell`."""
    if set(map(type, chain.from_iterable(values))) <= _PLAIN:  # the usual case: one pass in C
        return values
    columns = list(zip(*values, strict=True))
    for index, column in enumerate(columns):
        if not set(map(type, column)) <= _PLAIN:
            columns[index] = tuple(map(to_cell, column))
    return list(zip(*columns, strict=True))


class Store:
    """One connection to the results database; the only writer during a run."""

    def __init__(self, path: Path | str, timeout: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=min(timeout, 1.0), isolation_level=None)
        # sqlite's own busy wait stays short: a commit blocked by a reader is retried in Python
        # (commit_waiting_for_readers), with a message, up to BENCH_BUSY_TIMEOUT.
        # A rollback journal, not WAL: between runs the file is self-contained (what DVC versions),
        # and a run's few large batch commits cost less than WAL's second copy of every page.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new database only: an existing one keeps its own
        # A batch of 10,000 rows is a few MB of pages: kept in memory until its commit, not spilled
        # (a spill costs an extra journal sync), with a 64 MB page cache instead of 2 MB.
        self.conn.execute("PRAGMA cache_size=-65536")
        # Key lists for cache look-ups live in memory, not in a temporary file.
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self._columns: dict[str, dict[str, str]] = {}
        # Columns of each table that may still be waiting for a type: declared TEXT and, as far as this
        # connection knows, holding only NULLs. Those it added while every value was None, and those it
        # found TEXT (an earlier run, killed after its first batch, may have added them so). Their first
        # value decides (see settle_types); a text value, or one found stored, takes them off the list.
        self._typeless: dict[str, set[str]] = {}

    # -- schema -------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        return [r[0] for r in rows]

    def has_table(self, table: str) -> bool:
        return table in self.tables()

    def columns(self, table: str, refresh: bool = False) -> dict[str, str]:
        """Column name -> declared type (empty when the table does not exist)."""
        if refresh or table not in self._columns:
            self._columns[table] = column_types(self.conn, table)
        return self._columns[table]

    def ensure_table(self, table: str) -> None:
        """Create the table with xetrack's two base columns (no primary key: batches share timestamps)."""
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(f'{c} TEXT' for c in BASE_COLUMNS)})")
        self.columns(table, refresh=True)
        self._ensure_indexes(table)  # also on tables written before an index was added

    def ensure_columns(self, table: str, rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> None:
        """Add a column for every new key, typed by its first non-null value (like xetrack)."""
        known = self.columns(table)
        new = [k for k in (keys or dict.fromkeys(chain.from_iterable(rows))) if k not in known]
        waiting = self.typeless(table)
        if new or waiting:  # the usual case is neither: one pass over the keys, in C
            first = {k: next((row[k] for row in rows if row.get(k) is not None), None) for k in (*new, *waiting)}
            if waiting:
                self.settle_types(table, {key: first[key] for key in waiting})
            if new:
                self.add_columns(table, {key: first[key] for key in new})

    def typeless(self, table: str) -> set[str]:
        """The columns of `table` that may still be waiting for a type (see settle_types)."""
        if table not in self._typeless:
            declared = self.columns(table).items()
            self._typeless[table] = {n for n, t in declared if t.upper() == "TEXT" and n not in BASE_COLUMNS}
        return self._typeless[table]

    def settle_types(self, table: str, examples: dict[str, Any]) -> None:
        """Give a column added while its values were all None the type of its first value.

        A batch whose rows all lack a value (a model's spread that only some configurations have,
        flushed before the first of those configurations ran) made a TEXT column, and SQLite would
        store every later number in it as text: metrics read no numbers, DuckDB reads VARCHAR. While
        the column still holds only NULLs (nothing is lost) it is dropped and added again, typed.
        """
        waiting = self.typeless(table)
        for name, example in examples.items():
            if example is None or name not in waiting:
                continue
            waiting.discard(name)  # settled either way: retyped, or its type stands
            wanted = sql_type(example)
            if wanted == "TEXT" or self.columns(table).get(name, "").upper() != "TEXT":
                continue
            if self.conn.execute(f"SELECT 1 FROM {quote(table)} WHERE {quote(name)} IS NOT NULL LIMIT 1").fetchone():
                continue
            try:
                with self.transaction():
                    self.conn.execute(f"ALTER TABLE {quote(table)} DROP COLUMN {quote(name)}")
                    self.conn.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {wanted}")
            except sqlite3.OperationalError:  # an indexed column: it stays TEXT
                pass
            self.columns(table, refresh=True)

    def add_columns(self, table: str, examples: dict[str, Any]) -> None:
        """Add the columns of `examples` the table lacks, in that order, typed by the example value."""
        known = self.columns(table)
        missing = {key: value for key, value in examples.items() if key not in known}
        if not missing:
            return
        with self.transaction():  # one commit (one fsync) for all of them, not one each
            for key, value in missing.items():
                dtype = "TEXT" if value is None else sql_type(value)
                self.conn.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(key)} {dtype}")
                if value is None:
                    self.typeless(table).add(key)
            self.columns(table, refresh=True)
            self._ensure_indexes(table)

    def _ensure_indexes(self, table: str) -> None:
        known = self.columns(table)
        for suffix in RETIRED_INDEXES:
            self.conn.execute(f"DROP INDEX IF EXISTS {quote(f'ix_{table}_{suffix}')}")
        for suffix, (columns, where) in INDEXES.items():
            needed = set(columns) | ({"cache", "error"} if where else set())
            if needed <= set(known):
                name = quote(f"ix_{table}_{suffix}")
                listed = ", ".join(quote(c) for c in columns)
                partial = f" WHERE {where}" if where else ""
                self.conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {quote(table)} ({listed}){partial}")

    # -- writing ------------------------------------------------------------------------------
    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows in one transaction; keys missing from a row are NULL."""
        if not rows:
            return 0
        if table not in self._columns or not self._columns[table]:
            self.ensure_table(table)
        groups = _by_columns(rows)
        self.ensure_columns(table, rows, list(dict.fromkeys(chain.from_iterable(groups))))
        with self.transaction():
            for keys, values in groups.items():
                self.conn.executemany(self._insert_sql(table, keys), plain_cells(values))
        return len(rows)

    def _insert_sql(self, table: str, keys: Sequence[str]) -> str:
        return (
            f"INSERT INTO {quote(table)} ({', '.join(quote(k) for k in keys)}) VALUES ({', '.join('?' for _ in keys)})"
        )

    def move_rows(self, table: str, target: str, rowids: Sequence[int], extra: dict[str, Any]) -> int:
        """Move rows to `target` (adding `extra` columns) and delete them here, in one transaction.

        Used for error rows about to be recomputed: the predictions table keeps one row per
        (input, configuration) of a version, and the errors stay queryable in `target`.
        """
        if not rowids:
            return 0
        rows = []
        for start in range(0, len(rowids), 500):
            part = list(rowids[start : start + 500])
            marks = ", ".join("?" for _ in part)
            rows += self.query_dicts(f"SELECT * FROM {quote(table)} WHERE rowid IN ({marks})", part)
        rows = [{**row, **extra} for row in rows]
        self.ensure_table(target)
        self.ensure_columns(target, rows)
        keys = list(dict.fromkeys(chain.from_iterable(rows)))
        with self.transaction():
            self.conn.executemany(self._insert_sql(target, keys), to_tuples(rows, keys))
            self.conn.executemany(f"DELETE FROM {quote(table)} WHERE rowid = ?", ((r,) for r in rowids))
        return len(rows)

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def delete_where(self, table: str, where: dict[str, Any]) -> int:
        if not self.has_table(table) or not set(where) <= set(self.columns(table)):
            return 0
        clause = " AND ".join(f"{quote(k)} = ?" for k in where)
        with self.transaction():
            cursor = self.conn.execute(f"DELETE FROM {quote(table)} WHERE {clause}", tuple(where.values()))
        return cursor.rowcount

    # -- resume -------------------------------------------------------------------------------
    def has_rows(self, table: str, where: dict[str, Any]) -> bool:
        """Whether any row matches `where` (one index probe): a new experiment version has none."""
        if not self.has_table(table) or not set(where) <= set(self.columns(table)):
            return False
        clause = equals_clause(where)
        found = self.conn.execute(f"SELECT 1 FROM {quote(table)} WHERE {clause} LIMIT 1", tuple(where.values()))
        return found.fetchone() is not None

    def recorded(
        self,
        table: str,
        where: dict[str, Any],
        config_ids: Sequence[str] | None = None,
        input_ids: Sequence[Any] | None = None,
    ) -> list[tuple[int, str, str, str, str, int, bool]]:
        """(rowid, code_version, config_id, input_id, input_digest, key version, failed) of every row matching `where`.

        With `config_ids` and `input_ids`, only the rows of those (one chunk of a streamed run: the
        version's index answers it, so a resumed run never reads more than a chunk's rows at once).
        A row is the same task as a planned one when its identity's components match (keys.py),
        whatever the format of its cache_key.
        """
        known = set(self.columns(table))
        needed = {*IDENTITY_COLUMNS, "input_id", "error"} | set(where)
        if not self.has_table(table) or not needed <= known:
            return []
        version = quote(KEY_VERSION_COLUMN) if KEY_VERSION_COLUMN in known else "NULL"
        clause = equals_clause(where)
        parameters: list[Any] = list(where.values())
        if config_ids is not None and input_ids is not None:
            clause += " AND config_id IN (SELECT value FROM json_each(?))"
            clause += " AND input_id IN (SELECT value FROM json_each(?))"
            parameters += [json.dumps(list(config_ids)), json.dumps(list(input_ids), default=str)]
        rows = self.conn.execute(
            f"SELECT rowid, code_version, config_id, input_id, input_digest, {version}, error IS NOT NULL "
            f"FROM {quote(table)} WHERE {clause}",
            parameters,
        ).fetchall()
        return [
            (rowid, code, cid, str(iid), digest, keys.row_key_version(key_version), bool(failed))
            for rowid, code, cid, iid, digest, key_version, failed in rows
        ]

    def count_failed(self, table: str, where: dict[str, Any]) -> int:
        """Error rows matching `where` (retry-errors' progress total)."""
        if not self.has_table(table) or not {"error", *where} <= set(self.columns(table)):
            return 0
        clause = equals_clause(where)
        sql = f"SELECT COUNT(*) FROM {quote(table)} WHERE {clause} AND error IS NOT NULL"
        return int(self.conn.execute(sql, tuple(where.values())).fetchone()[0])

    def identities_by_key_version(self, table: str, code: str, config_ids: Sequence[str]) -> dict[int, set[str]]:
        """{identity version: identities (keys.identity)} of the error-free computed rows of `code` and `config_ids`.

        Asked only when a release invalidated an identity version (keys.INVALIDATED): the run then
        says how many of its tasks lost their recorded result, and why, before computing anything.
        """
        known = set(self.columns(table))
        if not {*IDENTITY_COLUMNS, "cache", "error"} <= known:
            return {}
        version = str(keys.LEGACY_KEY_VERSION)
        if KEY_VERSION_COLUMN in known:
            version = f"coalesce({quote(KEY_VERSION_COLUMN)}, {keys.LEGACY_KEY_VERSION})"
        found: dict[int, set[str]] = {}
        rows = self.conn.execute(
            f"SELECT {version}, config_id || input_digest FROM {quote(table)} "
            f"WHERE config_id IN (SELECT value FROM json_each(?)) AND code_version = ? AND {CACHE_ROWS}",
            (json.dumps(list(config_ids)), code),
        )
        for key_version, identity in rows:
            found.setdefault(int(key_version), set()).add(identity)
        return found

    def track_ids(self, table: str, where: dict[str, Any]) -> dict[str, str]:
        """config_id -> the track_id its rows matching `where` were recorded under (resume keeps it)."""
        if not self.has_table(table) or not {"config_id", *where} <= set(self.columns(table)):
            return {}
        clause = equals_clause(where)
        rows = self.conn.execute(
            f"SELECT config_id, MIN(track_id) FROM {quote(table)} WHERE {clause} GROUP BY config_id",
            tuple(where.values()),
        ).fetchall()
        return {cid: track_id for cid, track_id in rows if track_id}

    # -- reading ------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, tuple(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def latest_rows(self, table: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        """The latest row per (config_id, input_id) matching `where`: one row per prediction."""
        if not self.has_table(table):
            return []
        clause = equals_clause(where)
        return self.query_dicts(
            f"SELECT * FROM {quote(table)} WHERE rowid IN (SELECT MAX(rowid) FROM {quote(table)} "
            f"WHERE {clause} GROUP BY config_id, input_id) ORDER BY rowid",
            tuple(where.values()),
        )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, retried while another process holds the write lock.

    Inside a transaction already open on the connection it does nothing: the outer one commits
    (so adding columns while writing a batch costs one commit, not two).
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        if self.conn.in_transaction:
            return self.conn
        self.outer = True
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return self.conn
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 49:
                    raise
                time.sleep(0.1)
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self.outer:
            return
        if exc_type:
            self.conn.execute("ROLLBACK")
            return
        commit_waiting_for_readers(self.conn)


def busy_timeout_seconds() -> float:
    """How long a commit waits for readers (a `make duckdb` session...): $BENCH_BUSY_TIMEOUT, default 10 min."""
    try:
        return max(0.0, float(os.environ.get("BENCH_BUSY_TIMEOUT", "600")))
    except ValueError:
        return 600.0


class DatabaseBusyError(sqlite3.OperationalError):
    """The database stayed locked by another process longer than the busy timeout."""


def commit_waiting_for_readers(conn: sqlite3.Connection) -> None:
    """COMMIT, retried while a reader holds the database: the batch stays in the open transaction.

    A reader's transaction (DuckDB's attached sqlite, `make sql`) blocks a rollback-journal commit. A
    failed COMMIT leaves the transaction open, so waiting loses nothing; past the bound it is rolled back
    with a message naming the cause, instead of sqlite's bare "database is locked".
    """
    deadline = time.monotonic() + busy_timeout_seconds()
    told = False
    while True:
        try:
            conn.execute("COMMIT")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            if time.monotonic() >= deadline:
                conn.execute("ROLLBACK")
                raise DatabaseBusyError(
                    f"the results database stayed locked by another process for {busy_timeout_seconds():.0f} s "
                    "(a `make duckdb` / `make sql` session holding a transaction?): close it and re-run; "
                    "rows already committed are kept (BENCH_BUSY_TIMEOUT=seconds waits longer)"
                ) from error
            if not told:
                print(
                    "waiting for another process reading the results database (a `make duckdb` session?) "
                    f"to finish its transaction: up to {busy_timeout_seconds():.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                told = True
            time.sleep(0.2)


STAGED_FIRST = ("track_id", "timestamp", "function_name", "function_time", "cache")  # xetrack's column order


class RunRecorder:
    """Writes a run's rows, storing the columns one configuration's rows share once per run.

    Template-owned. Most of a row repeats its configuration's columns (parameters, environment,
    track_id), and binding values from Python is most of the cost of `executemany`. So the
    shared columns sit in a temporary table, one row per configuration; a batch binds only
    the columns that vary, into a staging table, and one INSERT ... SELECT joins the two inside
    SQLite. The predictions table gets the same columns and values as inserting whole rows.

    A staged row is (configuration index, *values) for a tuple of varying column names; rows
    with other names (an error row's extra `traceback`) go to a staging table of their own. A
    name in both wins as: batch constants, then shared columns, then the last varying one.
    """

    def __init__(self, store: Store, table: str, shared: Sequence[dict[str, Any]]):
        self.store, self.table = store, table
        self.shared_names = list(dict.fromkeys(chain.from_iterable(shared)))
        self.shared = [{name: row.get(name) for name in self.shared_names} for row in shared]
        self._stages: dict[tuple[str, ...], str] = {}
        self._cached: bool | None = None
        conn = store.conn
        conn.execute("DROP TABLE IF EXISTS temp.run_shared")
        listed = "".join(f", {quote(name)}" for name in self.shared_names)
        conn.execute(f"CREATE TEMP TABLE run_shared (idx INTEGER PRIMARY KEY{listed})")
        marks = ", ".join("?" for _ in range(len(self.shared_names) + 1))
        values = [(index, *row.values()) for index, row in enumerate(self.shared)]
        conn.executemany(f"INSERT INTO temp.run_shared VALUES ({marks})", plain_cells(values))
        if "config_id" in self.shared_names:  # cache hits find their configuration's columns by it
            conn.execute("CREATE INDEX temp.run_shared_config ON run_shared (config_id)")

    # -- computed rows -------------------------------------------------------------------------
    def write(self, groups: dict[tuple[str, ...], list[tuple]], constants: dict[str, Any] | None = None) -> int:
        """Insert batches of staged rows, in one transaction; `constants` are columns of the whole batch."""
        constants = constants or {}
        groups = {names: rows for names, rows in groups.items() if rows}
        if not groups:
            return 0
        conn, written = self.store.conn, 0
        with self.store.transaction():
            self._add_columns(groups, constants)
            for names, rows in groups.items():
                stage = self._stage(names)
                conn.executemany(
                    f"INSERT INTO temp.{stage} VALUES ({', '.join('?' for _ in range(len(names) + 1))})",
                    plain_cells(rows),
                )
                conn.execute(self._insert_sql(stage, names, constants), [to_cell(v) for v in constants.values()])
                conn.execute(f"DELETE FROM temp.{stage}")
                written += len(rows)
        return written

    def _stage(self, names: tuple[str, ...]) -> str:
        stage = self._stages.get(names)
        if stage is None:
            stage = self._stages[names] = f"run_stage_{len(self._stages)}"
            columns = ", ".join(f"c{i}" for i in range(len(names) + 1))
            self.store.conn.execute(f"DROP TABLE IF EXISTS temp.{stage}")
            self.store.conn.execute(f"CREATE TEMP TABLE {stage} ({columns})")
        return stage

    def _insert_sql(self, stage: str, names: tuple[str, ...], constants: dict[str, Any]) -> str:
        sources: dict[str, str] = {}
        for position, name in enumerate(names, start=1):
            sources[name] = f"s.c{position}"
        sources.update({name: f"r.{quote(name)}" for name in self.shared_names})
        sources.update(dict.fromkeys(constants, "?"))
        ordered = {name: sources[name] for name in self.store.columns(self.table) if name in sources}
        return (
            f"INSERT INTO {quote(self.table)} ({', '.join(map(quote, ordered))}) "
            f"SELECT {', '.join(ordered.values())} FROM temp.{stage} s JOIN temp.run_shared r ON r.idx = s.c0 "
            f"ORDER BY s.rowid"
        )

    def _add_columns(self, groups: dict[tuple[str, ...], list[tuple]], constants: dict[str, Any]) -> None:
        """New columns in xetrack's order: its own first, then varying, shared and batch columns."""
        known = self.store.columns(self.table)
        names = dict.fromkeys((*chain.from_iterable(groups), *self.shared_names, *constants))
        typeless = self.store.typeless(self.table)
        if names.keys() <= known.keys() and not typeless:  # the usual case
            return
        examples: dict[str, Any] = {}
        for group, rows in groups.items():
            for position, name in enumerate(group, start=1):
                if examples.get(name) is None and (name not in known or name in typeless):
                    examples[name] = next((row[position] for row in rows if row[position] is not None), None)
        for name in self.shared_names:
            examples[name] = next((row[name] for row in self.shared if row[name] is not None), None)
        examples.update(constants)
        if typeless:
            self.store.settle_types(self.table, {name: examples.get(name) for name in list(typeless)})
            if names.keys() <= self.store.columns(self.table).keys():
                return
        order = [n for n in STAGED_FIRST if n in names] + [n for n in names if n not in STAGED_FIRST]
        self.store.add_columns(self.table, {name: examples.get(name) for name in order})

    # -- cache hits ----------------------------------------------------------------------------
    def has_cached_rows(self) -> bool:
        """Whether any configuration of this run has an error-free computed row (one index probe).

        Asked once, before the run writes anything: the run's own rows are never its cache hits, so a
        first run looks nothing up, in any chunk.
        """
        if self._cached is None:
            self._cached = self._probe_cached_rows()
        return self._cached

    def _probe_cached_rows(self) -> bool:
        if not {*IDENTITY_COLUMNS, "input_id", "cache", "error"} <= self.store.columns(self.table).keys():
            return False
        found = self.store.conn.execute(
            f"SELECT 1 FROM {quote(self.table)} WHERE config_id IN (SELECT config_id FROM temp.run_shared) "
            f"AND {CACHE_ROWS} LIMIT 1"
        ).fetchone()
        return found is not None

    def _trusted_rows(self) -> str:
        """SQL condition on `t`: its identity version is one this release trusts (keys.INVALIDATED)."""
        if not keys.INVALIDATED:
            return ""
        if KEY_VERSION_COLUMN not in self.store.columns(self.table):
            return " AND 0" if keys.LEGACY_KEY_VERSION in keys.INVALIDATED else ""
        listed = ", ".join(str(int(version)) for version in keys.INVALIDATED)
        return f" AND coalesce(t.{quote(KEY_VERSION_COLUMN)}, {keys.LEGACY_KEY_VERSION}) NOT IN ({listed})"

    def copy_cache_hits(
        self,
        wanted: Sequence[tuple[str, Any, str]],
        code: str,
        key_prefixes: dict[str, str] | None = None,
        segment_names: Sequence[str] = (),
        segments: Sequence[tuple] | None = None,
    ) -> list[int]:
        """Log the tasks an earlier run computed without error as cache hits; return their positions.

        Called once per chunk of a streamed run (runner.py), so it costs a chunk's memory, never the
        table's. `wanted` holds each task's (config_id, input_id, input_digest): its identity
        (keys.py) and the item's id. A row is a hit when it has `code` (the run's code version) and
        that identity, whatever the format of its cache_key (an older release's rows are hits too).
        Each task's oldest such row is found through the cache's index (`_hits_in_id_range`: one read
        of the chunk's id range, for integer ids; else `_hits_by_probes`: one probe per task), and one
        INSERT ... SELECT copies the hits with this run's shared columns, `cache` = the track_id that computed it, no
        function_time and (with `key_prefixes`: config_id -> keys.key_prefix) the cache_key of
        today's format, in the tasks' order.

        `segments` (aligned with `wanted`; None when no item has a value) are each task's values of
        `segment_names`, computed from its item now: a copy whose cached row has no value for one (a
        segmentation added since) gets it, in the same statement.
        """
        table = quote(self.table)
        if not wanted or not self.has_cached_rows():
            return []
        conn = self.store.conn
        matches = self._hits_in_id_range(wanted, code)
        if matches is None:
            matches = self._hits_by_probes(wanted, code)
        if not matches:
            return []
        self._add_columns({}, {})  # a shared column new to the table (e.g. a new metadata key)
        filled = self._segments_with_values(segment_names, segments)
        sources = {name: f"t.{quote(name)}" for name in self.store.columns(self.table)}
        sources.update({name: f"r.{quote(name)}" for name in self.shared_names})
        sources.update({"timestamp": "?", "cache": "t.track_id", "function_time": "0.0"})
        prefixes = ""
        if key_prefixes and "cache_key" in sources:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS run_key_prefix (config_id TEXT PRIMARY KEY, prefix TEXT)")
            conn.execute("DELETE FROM temp.run_key_prefix")
            conn.executemany("INSERT INTO temp.run_key_prefix VALUES (?, ?)", key_prefixes.items())
            prefixes = " JOIN temp.run_key_prefix k ON k.config_id = t.config_id"
            sources["cache_key"] = "k.prefix || t.input_digest"
        if filled:
            for position, name in enumerate(filled, start=1):
                sources[name] = f"COALESCE(t.{quote(name)}, json_extract(j.value, '$[{position}]'))"
            payload = json.dumps(
                [[rowid, *(segments[task][column] for column in filled.values())] for task, rowid in matches],  # type: ignore[index]
                default=str,
            )
            rowid_of = "json_extract(j.value, '$[0]')"
        else:
            payload, rowid_of = json.dumps([rowid for _, rowid in matches]), "j.value"
        with self.store.transaction():
            # In the order of the array (json_each is the outer loop): the tasks' order.
            conn.execute(
                f"INSERT INTO {table} ({', '.join(map(quote, sources))}) SELECT {', '.join(sources.values())} "
                f"FROM json_each(?) j JOIN {table} t ON t.rowid = {rowid_of} "
                f"JOIN temp.run_shared r ON r.config_id = t.config_id{prefixes}",
                (timestamp(), payload),
            )
        return [position for position, _ in matches]

    def _hits_by_probes(self, wanted: Sequence[tuple[str, Any, str]], code: str) -> list[tuple[int, int]]:
        """(task position, rowid of its oldest cached row) for the tasks with one, sorted by position.

        One probe of the cache's index per task (config_id, code_version, input_id, input_digest), the
        tasks read once from one JSON array [[config_id, input_id, input_digest], ...]. A join, not a
        correlated MIN() subquery (half the time); a task with several cached rows takes its oldest.
        """
        found = self.store.conn.execute(
            "WITH w AS MATERIALIZED (SELECT key, value ->> 0 AS cid, value ->> 1 AS iid, value ->> 2 AS digest "
            f"FROM json_each(?)) SELECT w.key, t.rowid FROM w JOIN {quote(self.table)} t ON t.config_id = w.cid "
            "AND t.code_version = ? AND t.input_id = w.iid AND t.input_digest = w.digest "
            f"AND t.cache = '' AND t.error IS NULL{self._trusted_rows()}",
            (json.dumps(wanted, default=str), code),
        ).fetchall()
        positions = [position for position, _ in found]
        if all(a < b for a, b in zip(positions, positions[1:], strict=False)):  # in order, one row per task
            return found
        oldest: dict[int, int] = {}
        for position, rowid in found:
            if oldest.setdefault(position, rowid) > rowid:
                oldest[position] = rowid
        return sorted(oldest.items())

    def _hits_in_id_range(self, wanted: Sequence[tuple[str, Any, str]], code: str) -> list[tuple[int, int]] | None:
        """The same hits as `_hits_by_probes`, from one read of the cache index's range of the chunk's ids.

        Integer ids in an INTEGER column (the usual dataset, in input order) are a contiguous range of the
        cache's index for each configuration: reading that range once costs half of one probe per task.
        None (probe instead) when that would not be exact or not cheaper: ids that are not all integers
        (SQLite's affinity could compare them otherwise than Python), another column type, or a range
        holding more than twice the chunk's tasks (ids spread over a large range).
        """
        if self.store.columns(self.table).get("input_id", "").upper() != "INTEGER":
            return None
        ids = list(map(itemgetter(1), wanted))
        if set(map(type, ids)) != {int}:  # not bool, not float: exactly SQLite's integers
            return None
        configs = sorted(set(map(itemgetter(0), wanted)))
        where = (
            f"FROM {quote(self.table)} t WHERE t.config_id IN ({', '.join('?' for _ in configs)}) "
            f"AND t.code_version = ? AND t.input_id BETWEEN ? AND ? AND t.cache = '' AND t.error IS NULL"
            f"{self._trusted_rows()}"
        )
        bounds = (*configs, code, min(ids), max(ids))
        conn = self.store.conn
        if conn.execute(f"SELECT count(*) {where}", bounds).fetchone()[0] > 2 * len(wanted):
            return None
        oldest: dict[tuple[str, int, str], int] = {}
        for config, input_id, digest, rowid in conn.execute(
            f"SELECT t.config_id, t.input_id, t.input_digest, t.rowid {where}", bounds
        ):
            key = (config, input_id, digest)
            if oldest.setdefault(key, rowid) > rowid:
                oldest[key] = rowid
        get = oldest.get
        return [(position, rowid) for position, task in enumerate(wanted) if (rowid := get(task)) is not None]

    def _segments_with_values(self, names: Sequence[str], segments: Sequence[tuple] | None) -> dict[str, int]:
        """{segmentation: its index in a task's values} for those some task of the chunk has a value of.

        A segmentation new to the table gets its column here, typed by its first value.
        """
        if not names or segments is None:
            return {}
        filled: dict[str, int] = {}
        examples: dict[str, Any] = {}
        for column, name in enumerate(names):
            example = next((values[column] for values in segments if values[column] is not None), None)
            if example is not None:
                filled[name], examples[name] = column, example
        self.store.add_columns(self.table, examples)
        return filled
