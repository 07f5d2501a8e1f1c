"""DuckDB, offline: the sqlite extension comes from the `duckdb-ext-sqlite` wheel, never a download.

Template-owned. `INSTALL sqlite` (which xetrack's DuckDB engine runs on every connect) downloads
the extension unless it is already installed; the wheel ships it, so it is installed from there
once. After that, xetrack's `Reader(engine="duckdb")`, `xt --engine duckdb` and
`ATTACH '<db>' AS db (TYPE sqlite)` all work with no network.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

import duckdb


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = {"darwin": "osx", "windows": "windows"}.get(platform.system().lower(), "linux")
    return f"{system}_{arch}"


def bundled_extension() -> Path | None:
    """The sqlite_scanner extension file shipped by the duckdb-ext-sqlite wheel, if installed."""
    try:
        import duckdb_ext  # the wheel's package
    except ImportError:
        return None
    base = Path(next(iter(duckdb_ext.__path__))) / "extensions" / f"v{duckdb.__version__}"
    exact = base / _platform() / "sqlite_scanner.duckdb_extension"
    if exact.exists():
        return exact
    found = sorted(base.glob("*/sqlite_scanner.duckdb_extension"))
    return found[0] if found else None


@lru_cache(maxsize=1)
def ensure_sqlite_extension() -> None:
    """Install the sqlite extension from the wheel into DuckDB's extension folder (idempotent)."""
    con = duckdb.connect()
    try:
        try:
            con.execute("LOAD sqlite")
            return
        except duckdb.Error:
            pass
        extension = bundled_extension()
        if extension is None:
            raise RuntimeError(
                f"DuckDB's sqlite extension is not installed and duckdb-ext-sqlite=={duckdb.__version__}.* "
                "is missing: `uv sync` installs it (no download at run time)"
            )
        con.execute(f"INSTALL {sql_string(str(extension))}")
        con.execute("LOAD sqlite")
    finally:
        con.close()


def connect(db_path: Path | str, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the results database attached as `db` (the guide's convention)."""
    ensure_sqlite_extension()
    con = duckdb.connect()
    con.execute("LOAD sqlite")
    mode = ", READ_ONLY" if read_only else ""
    con.execute(f"ATTACH {sql_string(str(Path(db_path)))} AS db (TYPE sqlite{mode})")
    return con


def sql_string(text: str) -> str:
    """A SQL string literal: a project path may hold a quote (/home/o'brien/bench)."""
    return "'" + text.replace("'", "''") + "'"
