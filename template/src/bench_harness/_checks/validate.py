"""`make validate`: the guide's Phase 6 checks on the experiment database, after a run.

Template-owned. The guide's validate_benchmark and analyze_cache_hits scripts, as aggregate
DuckDB queries over the SQLite file:

* duplicate executions: an (input, configuration) recorded twice in one experiment version,
  and an error-free result computed more than once for the same cache key (the cache failed,
  or a run used --no-cache);
* incomplete runs: configurations of a version with fewer inputs than the others;
* NULL `params_*` values;
* errors by type and configuration;
* cache analysis: executions, hits, misses and unique configurations.

Exit status 1 when an issue is found.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .._checks.inspection import Findings
from .._core.config import BenchConfig
from .._results.analysis import connect, error_breakdown_sql, failed_sql, print_result
from .._storage.store import column_names, foreign_rows_note, harness_rows_sql, latest_version, quote


def check_duplicates(con, table: str, version_filter: str, f: Findings, harness: str = "TRUE") -> None:
    dupes, extra = con.execute(
        f"""SELECT COUNT(*), coalesce(SUM(n - 1), 0) FROM (
              SELECT COUNT(*) AS n FROM {table} WHERE {version_filter}
              GROUP BY experiment_version, config_id, input_id HAVING COUNT(*) > 1)"""
    ).fetchone()
    if dupes:
        f.issue(
            f"duplicate executions: {dupes} (input, configuration) pairs recorded more than once "
            f"in one version ({extra} extra rows)"
        )
        print_result(
            con,
            f"""SELECT experiment_version, config_id, input_id, COUNT(*) AS times, COUNT(DISTINCT track_id) AS runs
                FROM {table} WHERE {version_filter} GROUP BY ALL HAVING COUNT(*) > 1 ORDER BY times DESC LIMIT 10""",
            f.out,
        )
    else:
        f.ok("no (input, configuration) recorded twice in a version")
    recomputed = con.execute(
        f"""SELECT COUNT(*) FROM (SELECT cache_key FROM {table}
              WHERE coalesce(cache, '') = '' AND coalesce(error, '') = '' AND {harness}
              GROUP BY cache_key HAVING COUNT(*) > 1)"""
    ).fetchone()[0]
    if recomputed:
        f.issue(
            f"duplicate executions: {recomputed} results were computed again for the same cache key "
            "(same code, configuration and input): expected only after a run with --no-cache"
        )
    else:
        f.ok("no result computed twice for the same cache key")


def check_completeness(con, table: str, version_filter: str, f: Findings) -> None:
    rows = con.execute(
        f"""WITH per AS (SELECT experiment_version, config_id, COUNT(DISTINCT input_id) AS inputs
                         FROM {table} WHERE {version_filter} GROUP BY ALL)
            SELECT experiment_version, config_id, inputs, max(inputs) OVER (PARTITION BY experiment_version) AS most
            FROM per ORDER BY 1, 2"""
    ).fetchall()
    short = [(v, c, n, most) for v, c, n, most in rows if n < most]
    for version, cid, n, most in short:
        f.issue(f"incomplete: configuration {cid} of {version} has {n} inputs, others have {most}")
    if not short:
        f.ok(f"every configuration has the same inputs ({len(rows)} configuration(s))")


def check_null_params(con, table: str, columns: list[str], version_filter: str, f: Findings) -> None:
    params = [c for c in columns if c.startswith("params_")]
    if not params:
        f.issue("no params_* columns: the configuration of each row is not recorded")
        return
    nulls_sql = ", ".join(f"COUNT(*) FILTER ({quote(c)} IS NULL)" for c in params)
    counts = con.execute(f"SELECT {nulls_sql} FROM {table} WHERE {version_filter}").fetchone()
    nulls = {c: n for c, n in zip(params, counts, strict=True) if n}
    for column, n in nulls.items():
        f.issue(f"{column}: {n} rows with NULL (every parameter must be a field of Params)")
    if not nulls:
        f.ok(f"no NULL in {', '.join(params)}")


def error_breakdown(con, table: str, columns: list[str], version_filter: str, f: Findings) -> None:
    params = [quote(c) for c in columns if c.startswith("params_")] or ["config_id"]
    total, failed = con.execute(
        f"SELECT COUNT(*), COUNT(*) FILTER ({failed_sql()}) FROM {table} WHERE {version_filter}"
    ).fetchone()
    f.out.write(f"  {failed} of {total} rows failed ({100 * failed / max(total, 1):.1f}%)\n")
    if failed:
        where = f"{version_filter} AND {failed_sql()}"
        print_result(con, error_breakdown_sql(table, params, where, example="left(error, 80)"), f.out)


def cache_analysis(con, table: str, version_filter: str, f: Findings) -> None:
    """The guide's expected output of analyze_cache_hits."""
    total, hits, configs = con.execute(
        f"""SELECT COUNT(*), COUNT(*) FILTER (coalesce(cache, '') <> ''), COUNT(DISTINCT config_id)
            FROM {table} WHERE {version_filter}"""
    ).fetchone()
    misses = total - hits
    share = (lambda n: 100 * n / total) if total else (lambda n: 0.0)
    f.out.write("Cache Analysis:\n")
    f.out.write(f"- Total executions: {total}\n")
    f.out.write(f"- Cache hits: {hits} ({share(hits):.1f}%)\n")
    f.out.write(f"- Cache misses: {misses} ({share(misses):.1f}%)\n")
    f.out.write(f"- Unique parameter combinations: {configs}\n")


def validate(
    cfg: BenchConfig, db_path: Path, version: str | None = None, all_versions: bool = False, out: TextIO = sys.stdout
) -> list[str]:
    """Every check on the predictions table (one version: the latest unless given, or all)."""
    f = Findings(out)
    table_name = cfg.predictions_table
    columns = column_names(db_path, table_name)
    if not columns:
        f.issue(f"no table {table_name} in {db_path}: run `make experiment` first")
        return f.issues
    missing = {"config_id", "input_id", "experiment_version", "cache", "cache_key", "error"} - set(columns)
    if missing:
        f.issue(f"{table_name} lacks the harness columns {', '.join(sorted(missing))}")
        return f.issues
    version = None if all_versions else (version or latest_version(db_path, table_name))
    version_filter = "TRUE" if version is None else "experiment_version = '" + version.replace("'", "''") + "'"
    version_filter = f"{harness_rows_sql(columns)} AND {version_filter}"  # never a row logged by another tool
    con = connect(db_path)
    try:
        con.execute("SET sqlite_all_varchar = true")
        table = f"db.{quote(table_name)}"
        out.write(
            f"VALIDATION: {table_name} in {Path(db_path).name}, "
            f"{'every version' if version is None else 'version ' + version}\n"
        )
        foreign = foreign_rows_note(db_path, table_name)
        if foreign:
            out.write(f"  note  {foreign}\n")
        f.section("1. Duplicate executions")
        check_duplicates(con, table, version_filter, f, harness_rows_sql(columns))
        check_completeness(con, table, version_filter, f)
        f.section("2. Missing parameters")
        check_null_params(con, table, columns, version_filter, f)
        f.section("3. Errors by type and configuration")
        error_breakdown(con, table, columns, version_filter, f)
        f.section("4. Cache")
        cache_analysis(con, table, version_filter, f)
    finally:
        con.close()
    return f.conclude("VALIDATION FAILED ({n} issue(s)):", "VALIDATION PASSED")
