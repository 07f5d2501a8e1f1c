"""`make inspect`: the guide's data inspection, run on the development database before an experiment.

Template-owned. Checks what a broken predict() leaves behind: sample rows, missing values in
critical fields, probabilities outside [0, 1], negative latency/cost/length/tokens, empty raw
responses, constant columns and numbers stored as strings. Each check is one aggregate query
in DuckDB over the SQLite file (read as text, cast in SQL, so a column of mixed types cannot
break it); the storage class of a value is only visible to SQLite, so the last check asks it.
Exit status 1 when an issue is found, so `make inspect && make experiment` stops on bad data.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .._results.analysis import connect, print_result
from .._storage.store import column_names, foreign_rows_note, harness_rows_sql, quote

# Columns the harness fills identically for a whole run: constant by design, never an issue.
RUN_COLUMNS = frozenset(
    {
        "track_id", "timestamp", "function_name", "cache", "error", "error_type", "retry_count", "traceback",
        "config_id", "code_version", "experiment_version", "phase", "code_commit", "git_branch", "git_dirty",
        "data_commit", "python_version", "os", "hostname", "packages", "scorer_version",
    }
)  # fmt: skip
RUN_SUFFIXES = ("_digest", "_version", "_commit", "_hash")
HIDDEN_IN_SAMPLE = ("timestamp", "track_id", "function_name", "function_time", "input_digest", "cache_key", "packages")
CRITICAL = ("prediction", "ground_truth", "raw_response")
PROBABILITY_WORDS = ("prob", "confidence")
NON_NEGATIVE_WORDS = ("latency", "time", "duration", "cost", "count", "length", "tokens")
NUMERIC_WORDS = (*NON_NEGATIVE_WORDS, "prob", "confidence", "accuracy", "loss", "score")
IDENTIFIERS = ("input_id", "config_id", "track_id", "cache", "cache_key", "input_digest", "code_version", "timestamp")


@dataclass
class Findings:
    """Printed lines and the issues among them (an issue fails `make inspect`)."""

    out: TextIO
    issues: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.out.write(f"  ok    {text}\n")

    def warn(self, text: str) -> None:
        self.out.write(f"  note  {text}\n")

    def issue(self, text: str) -> None:
        self.out.write(f"  ISSUE {text}\n")
        self.issues.append(text)

    def section(self, title: str) -> None:
        self.out.write(f"\n{title}\n{'-' * len(title)}\n")

    def conclude(self, failed: str, passed: str, advice: str = "") -> list[str]:
        """The closing verdict: the numbered issues (and what to do), or the all-clear.

        `failed` may hold `{n}`, the number of issues.
        """
        self.out.write("\n")
        if not self.issues:
            self.out.write(f"{passed}\n")
            return self.issues
        self.out.write(failed.format(n=len(self.issues)) + "\n")
        self.out.write("".join(f"  {i}. {text}\n" for i, text in enumerate(self.issues, 1)))
        if advice:
            self.out.write(f"{advice}\n")
        return self.issues


def _has_word(column: str, words: tuple[str, ...]) -> bool:
    return any(w in column.lower() for w in words)


def _num(column: str) -> str:
    return f"TRY_CAST({quote(column)} AS DOUBLE)"


def check_missing(con, table: str, columns: list[str], f: Findings) -> None:
    """NULL counts per column; a missing prediction/ground truth/raw response/parameter is an issue.

    prediction and raw_response may be NULL on an error row (errors are data); not on a success.
    """
    ok_row = "coalesce(error, '') = ''" if "error" in columns else "TRUE"
    parts = []
    for c in columns:
        where = f" AND {ok_row}" if c in ("prediction", "raw_response") else ""
        parts.append(f"COUNT(*) FILTER ({quote(c)} IS NULL{where})")
    counts = con.execute(f"SELECT COUNT(*), {', '.join(parts)} FROM {table}").fetchone()
    total, missing = counts[0], dict(zip(columns, counts[1:], strict=True))
    found = False
    for column, n in missing.items():
        if not n or is_run_column(column):
            continue
        found = True
        text = f"{column}: {n} of {total} missing ({100 * n / total:.1f}%)"
        if column in CRITICAL or column.startswith("params_"):
            f.issue(f"missing values in critical field {text}")
        else:
            f.warn(text)
    for column in CRITICAL:
        if column not in columns:
            f.issue(f"critical column {column} is not recorded: predict() must return it")
    if not found:
        f.ok("no missing values")


def check_ranges(con, table: str, columns: list[str], f: Findings) -> None:
    """Probabilities in [0, 1] (numbers, or JSON lists of numbers); no negative latency, cost, length."""
    for c in columns:
        if _has_word(c, PROBABILITY_WORDS):
            bad = con.execute(
                f"""SELECT COUNT(*) FILTER ({_num(c)} < 0 OR {_num(c)} > 1
                       OR (starts_with(trim({quote(c)}), '[') AND
                           TRY(list_min(from_json({quote(c)}, '["DOUBLE"]')) < 0
                               OR list_max(from_json({quote(c)}, '["DOUBLE"]')) > 1))),
                       COUNT({quote(c)})
                    FROM {table}"""
            ).fetchone()
            if bad[0]:
                f.issue(f"{c}: {bad[0]} of {bad[1]} values outside [0, 1]")
            elif bad[1]:
                f.ok(f"{c}: every value in [0, 1]")
        elif _has_word(c, NON_NEGATIVE_WORDS) and c not in IDENTIFIERS:
            negative, numbers = con.execute(
                f"SELECT COUNT(*) FILTER ({_num(c)} < 0), COUNT({_num(c)}) FROM {table}"
            ).fetchone()
            if negative:
                f.issue(f"{c}: {negative} negative values (should be >= 0)")
            elif numbers:
                f.ok(f"{c}: every value >= 0")


def check_raw_responses(con, table: str, columns: list[str], f: Findings) -> None:
    """A successful row must keep its raw output (the guide: save raw responses, parse later)."""
    if "raw_response" not in columns:
        return
    ok_row = "coalesce(error, '') = ''" if "error" in columns else "TRUE"
    empty, total = con.execute(
        f"SELECT COUNT(*) FILTER (coalesce(trim(raw_response), '') = ''), COUNT(*) FROM {table} WHERE {ok_row}"
    ).fetchone()
    if empty:
        f.issue(f"raw_response: {empty} of {total} successful rows are empty: the model output is not being saved")
    else:
        f.ok("raw_response: filled on every successful row")


def is_run_column(column: str) -> bool:
    """Filled identically for a whole run by design: the harness's columns, digests and versions."""
    return column in RUN_COLUMNS or (column.endswith(RUN_SUFFIXES) and not column.startswith("params_"))


def check_constant(con, table: str, columns: list[str], f: Findings) -> None:
    """A column with one value on every row.

    An issue for the critical fields and for measurements (numbers: a latency or probability that
    never changes was not measured); a note for parameters (dev may run one configuration) and
    for descriptive text such as finish_reason='stop', which is often legitimately constant.
    """
    candidates = [c for c in columns if not is_run_column(c)]
    if not candidates:
        return
    counts = con.execute(
        f"SELECT COUNT(*), {', '.join(f'COUNT(DISTINCT {quote(c)})' for c in candidates)} FROM {table}"
    ).fetchone()
    if counts[0] < 2:
        return
    for column, distinct in zip(candidates, counts[1:], strict=True):
        if distinct != 1:
            continue
        value, numeric = con.execute(
            f"SELECT any_value({quote(column)}), COUNT(TRY_CAST({quote(column)} AS DOUBLE)) = COUNT({quote(column)}) "
            f"FROM {table}"
        ).fetchone()
        if column.startswith("params_"):
            f.warn(f"{column}: every row has the same value ({value}); fine if dev runs one configuration")
        elif column in CRITICAL or numeric:
            f.issue(f"{column} has no variation: every value is {value!r}")
        else:
            f.warn(f"{column}: every row has the same value ({value!r}); check that it is expected")


def check_types(db_path: Path, table: str, columns: list[str], f: Findings, where: str = "TRUE") -> None:
    """Numbers stored as text in a measurement column (SQLite keeps the storage class per value)."""
    suspects = [c for c in columns if _has_word(c, NUMERIC_WORDS) and c not in IDENTIFIERS]
    if not suspects:
        return
    select = ", ".join(
        f"SUM(typeof({quote(c)}) = 'text' AND trim({quote(c)}) GLOB '*[0-9]*' "
        f"AND NOT trim({quote(c)}) GLOB '*[^0-9.eE+-]*')"
        for c in suspects
    )
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as sq:
        counts = sq.execute(f"SELECT {select} FROM {quote(table)} WHERE {where}").fetchone()
    found = False
    for column, n in zip(suspects, counts, strict=True):
        if n:
            found = True
            f.issue(f"{column}: {n} numbers stored as strings (return floats/ints from predict(), not text)")
    if not found:
        f.ok(f"numbers stored as numbers in {', '.join(suspects)}")


def own_columns(con, table: str, columns: list[str], own: str) -> list[str]:
    """The columns the harness's rows fill, or that no row fills: not those only another tool's rows use."""
    counts = con.execute(
        f"SELECT {', '.join(f'COUNT({quote(c)}) FILTER ({own}), COUNT({quote(c)})' for c in columns)} "
        f"FROM db.{quote(table)}"
    ).fetchone()
    return [c for i, c in enumerate(columns) if counts[2 * i] or not counts[2 * i + 1]]


def inspect(db_path: Path, table: str, n_samples: int = 10, out: TextIO = sys.stdout) -> list[str]:
    """Run every check on `table` of `db_path`; print the findings; return the issues."""
    f = Findings(out)
    columns = column_names(db_path, table)
    if not columns:
        f.issue(f"no table {table} in {db_path}: run `make dev` first")
        return f.issues
    con = connect(db_path)
    try:
        con.execute("SET sqlite_all_varchar = true")
        own = harness_rows_sql(columns)
        foreign = foreign_rows_note(db_path, table)
        if foreign and own != "FALSE":  # rows logged by another tool: inspect the harness's own, say so
            source = f"(SELECT * FROM db.{quote(table)} WHERE {own}) AS harness_rows"
            columns = own_columns(con, table, columns, own)
        else:
            source, own = f"db.{quote(table)}", "TRUE"
        total = con.execute(f"SELECT COUNT(*) FROM {source}").fetchone()[0]
        out.write(f"DATA INSPECTION: {table} in {Path(db_path).name}: {total} rows\n")
        if foreign:
            out.write(f"  note  {foreign}\n")
        if not total:
            f.issue("no rows: did the run record anything?")
            return f.issues
        f.section(f"1. Sample rows (first {n_samples})")
        hidden = set(HIDDEN_IN_SAMPLE) | {c for c in columns if is_run_column(c)} - {"error", "error_type"}
        shown = ", ".join(f"left({quote(c)}, 40) AS {quote(c)}" for c in columns if c not in hidden)
        print_result(con, f"SELECT {shown} FROM {source} LIMIT {int(n_samples)}", out, max_rows=n_samples)
        f.section("2. Missing values")
        check_missing(con, source, columns, f)
        f.section("3. Value ranges")
        check_ranges(con, source, columns, f)
        check_raw_responses(con, source, columns, f)
        check_constant(con, source, columns, f)
        f.section("4. Data types")
        check_types(db_path, table, columns, f, own)
    finally:
        con.close()
    return f.conclude(
        "ISSUES FOUND ({n}): fix predict() before the experiment phase",
        "DATA LOOKS GOOD: no issues found",
        "Then `make clean-dev && make dev && make inspect` until it is clean.",
    )
