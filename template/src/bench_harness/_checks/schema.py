"""Schema drift between `params.Params` and the tables already recorded.

Template-owned. Renaming a field of `Params` makes the next run write a NEW `params_<field>`
column: old rows keep the old column, new rows the new one, and every query that groups by the
parameter silently splits in two. This module finds that before a run (and in the pre-commit
hook), names the probable renames (close matches, as the guide does with difflib), prints the
exact command that fixes them, and renames a column in place on request. A rename is recognised
by type and shape (one `params_*` column gone and one of the same storage type new), not by name
alone: `top_k` -> `k_features` is a rename although the names share nothing.

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
from .._storage import versionfiles
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
    ambiguous: list[tuple[str, list[str]]] = field(default_factory=list)  # (new column, recorded candidates)
    tables: list[str] = field(default_factory=list)

    @property
    def has_renames(self) -> bool:
        return bool(self.renames or self.ambiguous)

    @property
    def clean(self) -> bool:
        return not (self.new or self.missing)


# How a Params annotation is stored (bool is an INTEGER in SQLite, as xetrack stores it).
STORAGE_TYPES = {"str": "TEXT", "int": "INTEGER", "bool": "INTEGER", "float": "REAL"}


def expected_columns(params_class: Any) -> list[str]:
    """`params_<field>` for every field of the dataclass, in declaration order."""
    return [PREFIX + f.name for f in dataclasses.fields(params_class)]


def expected_types(params_class: Any) -> dict[str, str]:
    """`params_<field>` -> its storage type (TEXT, INTEGER, REAL), from the field annotations."""
    types = {}
    for f in dataclasses.fields(params_class):
        name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        types[PREFIX + f.name] = STORAGE_TYPES.get(name.split("|")[0].strip(), "")
    return types


def params_class() -> Any:
    """The user's `Params` dataclass (imported lazily: params.py may import heavy things)."""
    from .._core.user import user_module

    return user_module("params").Params


def recorded_columns(db_path: Path, tables: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """`params_*` columns of `tables` in the database with their declared types, and the tables that exist."""
    if not db_path.exists():
        return {}, []
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        found: dict[str, str] = {}
        existing = [t for t in tables if t in present]
        for table in existing:
            for _, column, declared, *_ in con.execute(f"PRAGMA table_info({quote(table)})"):
                if column.startswith(PREFIX):
                    found.setdefault(column, (declared or "").upper())
    finally:
        con.close()
    return found, existing


def compare(
    expected: Sequence[str] | dict[str, str],
    recorded: Sequence[str] | dict[str, str],
    tables: Sequence[str] = (),
) -> Drift:
    """New, missing and renamed columns: a rename pairs a new column with a gone one of the same type.

    Matched by type and shape first, by name second: one column gone and one of the same type new is
    a rename whatever the names (top_k -> k_features); several of one type are paired by name
    similarity, and the ones left unpaired among several candidates are ambiguous (the user pairs them).
    """
    expected_types = dict(expected) if isinstance(expected, dict) else dict.fromkeys(expected, "")
    recorded_types = dict(recorded) if isinstance(recorded, dict) else dict.fromkeys(recorded, "")
    drift = Drift(list(expected_types), list(recorded_types), tables=list(tables))
    if not recorded_types:  # nothing recorded yet: the first run defines the schema
        return drift
    drift.new = [c for c in expected_types if c not in recorded_types]
    drift.missing = [c for c in recorded_types if c not in expected_types]
    for storage in dict.fromkeys(expected_types[c] for c in drift.new):
        new = [c for c in drift.new if expected_types[c] == storage]
        gone = [c for c in drift.missing if _same_type(recorded_types[c], storage)]
        _pair(new, gone, drift)
    return drift


def _same_type(declared: str, storage: str) -> bool:
    """Whether a recorded column's declared type can hold a parameter of `storage` type (unknown matches all)."""
    return not declared or not storage or declared == storage


def _pair(new: list[str], gone: list[str], drift: Drift) -> None:
    """Pair new columns with gone ones of the same type: by name when several, by shape when one of each."""
    taken = {old for old, _ in drift.renames}
    gone = [c for c in gone if c not in taken]
    if len(new) == 1 and len(gone) == 1:
        drift.renames.append((gone[0], new[0]))
        return
    unpaired = []
    for column in new:
        # Compared without the shared prefix, which alone would make params_alpha "close" to params_delta.
        bare = {c.removeprefix(PREFIX): c for c in gone}
        match = difflib.get_close_matches(column.removeprefix(PREFIX), list(bare), n=1, cutoff=RENAME_CUTOFF)
        if match:
            drift.renames.append((bare[match[0]], column))
            gone.remove(bare[match[0]])
        else:
            unpaired.append(column)
    if len(unpaired) == 1 and len(gone) == 1:
        drift.renames.append((gone[0], unpaired[0]))
    elif unpaired and gone:
        drift.ambiguous.extend((column, list(gone)) for column in unpaired)


def check(cfg: BenchConfig, params_cls: Any = None) -> Drift:
    """Compare `Params` with both tables of the experiment database."""
    tables = (cfg.predictions_table, cfg.metrics_table)
    recorded, existing = recorded_columns(cfg.db_path, tables)
    return compare(expected_types(params_cls or params_class()), recorded, existing)


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
    if drift.has_renames:
        errors.append(f"schema drift: Params no longer matches the columns recorded in {db_name}:")
        for old, new in drift.renames:
            errors.append(f"  probable rename: {old} -> {new}")
        for new, candidates in drift.ambiguous:
            shown = ", ".join(candidates)
            errors.append(f"  new column {new}: a rename of one of {shown}? (same type; pair it yourself)")
        errors.append(
            "  A run now would write the new name into a NEW column: old and new rows would be split across two."
        )
        guesses = drift.renames + [(candidates[0], new) for new, candidates in drift.ambiguous]
        errors.append("  Rename the recorded column(s) in place (both tables, and the dev database):")
        errors.append(f"    {rename_command(guesses)}")
        pairs = ",".join(f"{old}={new}" for old, new in guesses)
        errors.append(f"    (or: make check-schema RENAME={pairs})")
        errors.append(
            "  If it really is a new parameter: `make experiment ARGS=--allow-schema-change` "
            "(and `SKIP=schema-drift git commit ...` for the pre-commit hook)."
        )
    renamed_new = {new for _, new in drift.renames} | {new for new, _ in drift.ambiguous}
    renamed_old = {old for old, _ in drift.renames} | {c for _, cs in drift.ambiguous for c in cs}
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
                if outcome == "absent":
                    continue
                if db_path == cfg.db_path:  # the versioned database: rebuilds from results/ rename alike
                    versionfiles.record_rename(db_path, table, old, new)
                done.append(f"{db_path.name}:{table}: {outcome} {old} -> {new} ({cfg.engine})")
    return done
