"""The results database: xetrack-compatible tables written fast by a single writer.

Template-owned. The file is SQLite, exactly as xetrack writes it (its DuckDB engine ATTACHes
SQLite too), so `xetrack.Reader`, `xt` and DuckDB read it. Rows are written here with
`sqlite3.executemany` in batches instead of xetrack's per-row `track()` (about 1 ms a row):
xetrack's column conventions are kept (`track_id`, `timestamp`, `function_name`,
`function_time`, `cache`, `params_<field>`), and columns are added as new keys appear.

The predictions table is also the cache: a computed, error-free row is found again by its
`cache_key`, which is stable across processes (see keys.py).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # xetrack's
# Indexes by the columns they need: the cache looks computed, error-free rows up by
# (configuration, input) and then compares the key; resume, metrics and retry-errors read one
# experiment version. Every index slows each insert, and an index on the random cache_key alone
# would cost 40% of the write throughput, while these two grow mostly at their end. The cache's
# index is partial: cache-hit and error rows are never looked up, so they are not in it.
CACHE_ROWS = "cache = '' AND error IS NULL"
INDEXES: dict[str, tuple[tuple[str, ...], str]] = {
    "computed": (("config_id", "input_id"), CACHE_ROWS),
    "version": (("experiment_version", "config_id", "input_id"), ""),
}
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


def column_names(con: sqlite3.Connection, table: str) -> list[str]:
    """The table's columns in storage order (empty when it does not exist), on any open connection."""
    return [row[1] for row in con.execute(f"PRAGMA table_info({quote(table)})")]


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

    The runner's rows nearly all have the same keys in the same order, so this is one group, built
    without looking any key up; an error row with an extra `traceback` makes a second group.
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
        # Used by one thread at a time, but not always the one that opened it (the run's writer thread).
        self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._bulk = False
        # Key lists for cache look-ups live in memory, not in a temporary file.
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self._columns: dict[str, dict[str, str]] = {}

    # -- schema -------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        return [r[0] for r in rows]

    def has_table(self, table: str) -> bool:
        return table in self.tables()

    def columns(self, table: str, refresh: bool = False) -> dict[str, str]:
        """Column name -> declared type (empty when the table does not exist)."""
        if refresh or table not in self._columns:
            rows = self.conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
            self._columns[table] = {r[1]: r[2] for r in rows}
        return self._columns[table]

    def ensure_table(self, table: str) -> None:
        """Create the table with xetrack's two base columns (no primary key: batches share timestamps)."""
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} (track_id TEXT, timestamp TEXT)")
        self.columns(table, refresh=True)
        self._ensure_indexes(table)  # also on tables written before an index was added

    def ensure_columns(self, table: str, rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> None:
        """Add a column for every new key, typed by its first non-null value (like xetrack)."""
        known = self.columns(table)
        new = [k for k in (keys or dict.fromkeys(chain.from_iterable(rows))) if k not in known]
        if not new:  # the usual case: one pass over the keys, in C
            return
        missing: dict[str, str] = {}
        for key in new:
            value = next((row[key] for row in rows if row.get(key) is not None), None)
            missing[key] = "TEXT" if value is None else sql_type(value)
        for key, dtype in missing.items():
            self.conn.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(key)} {dtype}")
        if missing:
            self.columns(table, refresh=True)
            self._ensure_indexes(table)

    def _ensure_indexes(self, table: str) -> None:
        known = self.columns(table)
        for suffix, (columns, where) in INDEXES.items():
            needed = set(columns) | ({"cache", "error"} if where else set())
            if needed <= set(known):
                name = quote(f"ix_{table}_{suffix}")
                listed = ", ".join(quote(c) for c in columns)
                partial = f" WHERE {where}" if where else ""
                self.conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {quote(table)} ({listed}){partial}")

    def rename_column(self, table: str, old: str, new: str) -> None:
        self.conn.execute(f"ALTER TABLE {quote(table)} RENAME COLUMN {quote(old)} TO {quote(new)}")
        self.columns(table, refresh=True)

    # -- writing ------------------------------------------------------------------------------
    def begin_bulk(self) -> None:
        """Write-ahead logging while a run records: a commit costs no fsync, so batches stay cheap.

        `end_bulk` returns to a rollback journal, so between runs the database is one
        self-contained file (what DVC versions and xetrack expects). A killed run leaves the
        file in WAL mode with its -wal file; SQLite recovers it at the next open.
        """
        self.conn.execute("PRAGMA journal_mode=WAL")
        # Checkpoint (copy the log into the file, with an fsync) every ~40 MB, not every 4 MB.
        self.conn.execute("PRAGMA wal_autocheckpoint=10000")
        self._bulk = True

    def end_bulk(self) -> None:
        if self._bulk:
            self._bulk = False
            try:
                self.conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:  # a reader holds the file: it stays in WAL mode, still valid
                pass

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
            f"INSERT INTO {quote(table)} ({', '.join(quote(k) for k in keys)}) "
            f"VALUES ({', '.join('?' for _ in keys)})"
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

    # -- cache --------------------------------------------------------------------------------
    def _key_table(self, wanted: Iterable[tuple[str, Any, str]]) -> None:
        """Load (config_id, input_id, cache_key) triples into an in-memory temp table, in one transaction."""
        # No key on the temp table: it is only scanned, each row probing the (config_id, input_id) index.
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_keys (config_id, input_id, cache_key)")
        self.conn.execute("BEGIN")
        try:
            self.conn.execute("DELETE FROM temp.wanted_keys")
            self.conn.executemany("INSERT INTO temp.wanted_keys VALUES (?, ?, ?)", wanted)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def successful_keys(
        self, table: str, wanted: Iterable[tuple[str, Any, str]], where: dict[str, Any] | None = None
    ) -> dict[str, tuple[int, str]]:
        """cache_key -> (rowid, track_id) of error-free computed rows (the oldest wins).

        `wanted` holds (config_id, input_id, cache_key) triples: rows are found through the
        (config_id, input_id) index, then matched on the key.
        """
        needed = {"cache_key", "cache", "error", "config_id", "input_id"} | set(where or {})
        if not self.has_table(table) or not needed <= set(self.columns(table)):
            return {}
        self._key_table(wanted)
        clause = "".join(f" AND t.{quote(k)} = ?" for k in (where or {}))
        rows = self.conn.execute(
            f"SELECT t.cache_key, MIN(t.rowid), t.track_id FROM temp.wanted_keys w "
            f"CROSS JOIN {quote(table)} t ON t.config_id = w.config_id AND t.input_id = w.input_id "
            f"AND t.cache_key = w.cache_key "
            f"WHERE t.cache = '' AND t.error IS NULL{clause} GROUP BY t.cache_key",  # = CACHE_ROWS
            tuple((where or {}).values()),
        ).fetchall()
        return {key: (rowid, track_id) for key, rowid, track_id in rows}

    def recorded(self, table: str, where: dict[str, Any]) -> list[tuple[int, str, str, str, bool]]:
        """(rowid, cache_key, config_id, input_id, failed) of every row matching `where`.

        Reads one experiment version through its index: empty for a new run, the rows already
        written for a resumed one.
        """
        needed = {"cache_key", "config_id", "input_id", "error"} | set(where)
        if not self.has_table(table) or not needed <= set(self.columns(table)):
            return []
        clause = " AND ".join(f"{quote(k)} = ?" for k in where) or "1=1"
        rows = self.conn.execute(
            f"SELECT rowid, cache_key, config_id, input_id, error IS NOT NULL FROM {quote(table)} WHERE {clause}",
            tuple(where.values()),
        ).fetchall()
        return [(rowid, key, cid, str(iid), bool(failed)) for rowid, key, cid, iid, failed in rows]

    def track_ids(self, table: str, where: dict[str, Any]) -> dict[str, str]:
        """config_id -> the track_id its rows matching `where` were recorded under (resume keeps it)."""
        if not self.has_table(table) or not {"config_id", *where} <= set(self.columns(table)):
            return {}
        clause = " AND ".join(f"{quote(k)} = ?" for k in where) or "1=1"
        rows = self.conn.execute(
            f"SELECT config_id, MIN(track_id) FROM {quote(table)} WHERE {clause} GROUP BY config_id",
            tuple(where.values()),
        ).fetchall()
        return {cid: track_id for cid, track_id in rows if track_id}

    def copy_cached_rows(
        self, table: str, rowids: Sequence[int], metadata: dict[str, Any], track_ids: dict[str, str]
    ) -> int:
        """Log cache hits: copy computed rows with `cache` = the track_id that computed them.

        One INSERT ... SELECT for all hits, so a fully cached re-run costs milliseconds.
        `metadata` holds the columns that describe this run; `track_ids` maps config_id to this
        run's track_id for that configuration.
        """
        if not rowids:
            return 0
        self.ensure_columns(table, [metadata])
        fixed = {"cache", "function_time", "track_id", "timestamp", *metadata}
        copied = [c for c in self.columns(table) if c not in fixed]
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS hit_rows (rid INTEGER PRIMARY KEY)")
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS run_tracks (config_id TEXT PRIMARY KEY, track_id TEXT)")
        track_expr = "(SELECT r.track_id FROM temp.run_tracks r WHERE r.config_id = t.config_id)"
        target = ["track_id", "timestamp", "cache", "function_time", *metadata, *copied]
        select = [track_expr, "?", "t.track_id", "0.0", *("?" for _ in metadata), *(f"t.{quote(c)}" for c in copied)]
        params = [timestamp(), *(to_cell(v) for v in metadata.values())]
        sql = (
            f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in target)}) "
            f"SELECT {', '.join(select)} FROM {quote(table)} t JOIN temp.hit_rows h ON h.rid = t.rowid "
            f"ORDER BY t.rowid"
        )
        with self.transaction():
            self.conn.execute("DELETE FROM temp.hit_rows")
            self.conn.executemany("INSERT OR IGNORE INTO temp.hit_rows VALUES (?)", ((r,) for r in rowids))
            self.conn.execute("DELETE FROM temp.run_tracks")
            self.conn.executemany("INSERT INTO temp.run_tracks VALUES (?, ?)", list(track_ids.items()))
            cursor = self.conn.execute(sql, params)
        return cursor.rowcount

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
        clause = " AND ".join(f"{quote(k)} = ?" for k in where) or "1=1"
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
    """BEGIN IMMEDIATE ... COMMIT, retried while another process holds the write lock."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
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
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
