"""Schema drift between `params.Params` and the tables already recorded.

Template-owned. Renaming a field of `Params` makes the next run write a NEW `params_<field>`
column: old rows keep the old column, new rows the new one, and every query that groups by the
parameter silently splits in two. This module finds that before a run (and in the pre-commit
hook), names the probable renames (close matches, as the guide does with difflib), prints the
exact command that fixes them, and renames a column in place on request.

Renames go through the configured engine: for `engine = "duckdb"`, DuckDB's sqlite extension
runs `ALTER TABLE db.<table> RENAME COLUMN` on the attached file (it supports RENAME and DROP
COLUMN); for `engine = "sqlite"`, sqlite3 does. The file is SQLite either way.
"""

from __future__ import annotations

import dataclasses
import difflib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._core.config import BenchConfig
from .._storage.store import column_names, quote

PREFIX = "params_"
# difflib's ratio for "probably the same parameter": the guide's 0.6.
RENAME_CUTOFF = 0.6


@dataclass
class Drift:
    """How the code's parameters differ from the columns of the recorded tables."""

    expected: list[str]
    recorded: list[str]
    new: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)  # (old column, new column)
    tables: list[str] = field(default_factory=list)

    @property
    def has_renames(self) -> bool:
        return bool(self.renames)

    @property
    def clean(self) -> bool:
        return not (self.new or self.missing)


def expected_columns(params_class: Any) -> list[str]:
    """`params_<field>` for every field of the dataclass, in declaration order."""
    return [PREFIX + f.name for f in dataclasses.fields(params_class)]


def params_class() -> Any:
    """The user's `Params` dataclass (imported lazily: params.py may import heavy things)."""
    from .._core.user import user_module

    return user_module("params").Params


def recorded_columns(db_path: Path, tables: Sequence[str]) -> tuple[list[str], list[str]]:
    """`params_*` columns of `tables` in the database, and the tables that exist."""
    if not db_path.exists():
        return [], []
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        found: dict[str, None] = {}
        existing = [t for t in tables if t in present]
        for table in existing:
            for column in column_names(con, table):
                if column.startswith(PREFIX):
                    found[column] = None
    finally:
        con.close()
    return list(found), existing


def compare(expected: Sequence[str], recorded: Sequence[str], tables: Sequence[str] = ()) -> Drift:
    """New, missing and probably-renamed columns (a rename pairs a new column with a missing one)."""
    drift = Drift(list(expected), list(recorded), tables=list(tables))
    if not recorded:  # nothing recorded yet: the first run defines the schema
        return drift
    drift.new = [c for c in expected if c not in recorded]
    drift.missing = [c for c in recorded if c not in expected]
    candidates = list(drift.missing)
    for column in drift.new:
        match = difflib.get_close_matches(column, candidates, n=1, cutoff=RENAME_CUTOFF)
        if match:
            drift.renames.append((match[0], column))
            candidates.remove(match[0])
    return drift


def check(cfg: BenchConfig, params_cls: Any = None) -> Drift:
    """Compare `Params` with both tables of the experiment database."""
    tables = (cfg.predictions_table, cfg.metrics_table)
    recorded, existing = recorded_columns(cfg.db_path, tables)
    return compare(expected_columns(params_cls or params_class()), recorded, existing)


def rename_command(renames: Iterable[tuple[str, str]]) -> str:
    """The exact command that renames the recorded columns to the code's names."""
    pairs = " ".join(f"--rename {old}={new}" for old, new in renames)
    return f"uv run bench check-schema {pairs}"


def report(drift: Drift, db_name: str) -> tuple[list[str], list[str]]:
    """(errors, notes) as printable lines. Probable renames are errors; the rest are notes."""
    errors: list[str] = []
    notes: list[str] = []
    if not drift.recorded:
        notes.append(f"schema: no recorded params_* columns in {db_name} yet (the first experiment defines them)")
        return errors, notes
    if drift.renames:
        errors.append(f"schema drift: Params no longer matches the columns recorded in {db_name}:")
        for old, new in drift.renames:
            errors.append(f"  probable rename: {old} -> {new}")
        errors.append(
            "  A run now would write the new name into a NEW column: old and new rows would be split across two."
        )
        errors.append("  Rename the recorded column(s) in place (both tables, and the dev database):")
        errors.append(f"    {rename_command(drift.renames)}")
        pairs = ",".join(f"{old}={new}" for old, new in drift.renames)
        errors.append(f"    (or: make check-schema RENAME={pairs})")
        errors.append(
            "  If it really is a new parameter: `make experiment ARGS=--allow-schema-change` "
            "(and `SKIP=schema-drift git commit ...` for the pre-commit hook)."
        )
    renamed_new = {new for _, new in drift.renames}
    renamed_old = {old for old, _ in drift.renames}
    for column in drift.new:
        if column not in renamed_new:
            notes.append(f"schema: new parameter column {column} (older rows will hold NULL in it)")
    for column in drift.missing:
        if column not in renamed_old:
            notes.append(f"schema: {column} is recorded but no longer in Params (old rows keep it)")
    if drift.clean:
        notes.append(f"schema: ok, {len(drift.expected)} params_* columns match {', '.join(drift.tables)}")
    return errors, notes


def parse_rename(text: str) -> tuple[str, str]:
    """'old=new' (with or without the params_ prefix) -> (params_old, params_new)."""
    if text.count("=") != 1:
        raise ValueError(f"--rename takes old=new, got {text!r}")
    old, new = (part.strip() for part in text.split("="))
    if not old or not new:
        raise ValueError(f"--rename takes old=new, got {text!r}")
    return tuple(p if p.startswith(PREFIX) else PREFIX + p for p in (old, new))  # type: ignore[return-value]


def rename_column(db_path: Path, table: str, old: str, new: str, engine: str) -> str:
    """Rename `old` to `new` in one table; when both exist, fold `old` into `new` and drop it.

    Returns what was done ('renamed', 'merged' or 'absent'). The folding case is a run that
    already wrote the new name: its rows and the older ones end up in the one column.
    """
    with sqlite3.connect(db_path) as con:
        if table not in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}:
            return "absent"
        columns = column_names(con, table)
    if old not in columns:
        return "absent"
    o, n = quote(old), quote(new)

    def statements(t: str) -> list[str]:
        if new in columns:
            return [f"UPDATE {t} SET {n} = {o} WHERE {n} IS NULL", f"ALTER TABLE {t} DROP COLUMN {o}"]
        return [f"ALTER TABLE {t} RENAME COLUMN {o} TO {n}"]

    outcome = "merged" if new in columns else "renamed"
    if engine == "duckdb":
        from .._storage.duck import connect

        duck = connect(db_path, read_only=False)
        try:
            for sql in statements(f"db.{quote(table)}"):
                duck.execute(sql)
        finally:
            duck.close()
    else:
        con = sqlite3.connect(db_path, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            for sql in statements(quote(table)):
                con.execute(sql)
            con.execute("COMMIT")
        finally:
            con.close()
    return outcome


def apply_renames(cfg: BenchConfig, renames: Sequence[tuple[str, str]]) -> list[str]:
    """Rename columns in both tables of the experiment and the dev database; lines to print."""
    done = []
    for db_path in dict.fromkeys((cfg.db_path, cfg.dev_db_path)):
        if not db_path.exists():
            continue
        for table in (cfg.predictions_table, cfg.metrics_table):
            for old, new in renames:
                outcome = rename_column(db_path, table, old, new, cfg.engine)
                if outcome != "absent":
                    done.append(f"{db_path.name}:{table}: {outcome} {old} -> {new} ({cfg.engine})")
    return done
