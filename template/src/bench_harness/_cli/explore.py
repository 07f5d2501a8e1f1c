"""`bench browse`: the results in Datasette, read-only (the optional `browse` extra).

Datasette opens the database with `--immutable`: SQLite's immutable mode, which never writes, so
browsing cannot change the DVC-tracked file. It binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable

from .._core.config import BenchConfig

Command = Callable[[argparse.Namespace, BenchConfig], int]


def datasette_command(cfg: BenchConfig, port: int, dev: bool = False) -> list[str]:
    """The Datasette command line: immutable (read-only) database, loopback only."""
    db = cfg.dev_db_path if dev else cfg.db_path
    return [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        "--immutable",
        str(db),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--setting",
        "sql_time_limit_ms",
        "20000",
        "--setting",
        "max_returned_rows",
        "5000",
    ]


def cmd_browse(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Browse and query the results in Datasette, read-only, on http://127.0.0.1:PORT."""
    db = cfg.dev_db_path if args.dev else cfg.db_path
    if not db.exists():
        print(f"{db.name} does not exist: run `make experiment` (or `make dev`) first", file=sys.stderr)
        return 1
    if importlib.util.find_spec("datasette") is None:
        print("bench browse needs Datasette: `make browse` installs it (uv run --extra browse)", file=sys.stderr)
        return 2
    command = datasette_command(cfg, args.port, args.dev)
    print(f"Datasette on http://127.0.0.1:{args.port}/ (read-only; Ctrl-C stops it)", flush=True)
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return


def add_parsers(sub: argparse._SubParsersAction, registry: dict[str, Command]) -> None:
    """Register `browse` on `bench`'s parser and in its command table."""
    registry["browse"] = cmd_browse
    p = sub.add_parser("browse", help=cmd_browse.__doc__)
    p.add_argument("--port", type=int, default=8001, help="port on 127.0.0.1 (default: 8001)")
    p.add_argument("--dev", action="store_true", help="the development database")
