"""One-line messages, each with its fix, for failures a user can repair (instead of a traceback)."""

from __future__ import annotations

import errno
import sqlite3

from .._core.datafiles import DataError


def plain_message(error: BaseException) -> str | None:
    """The message for a failure the user can fix, or None to let the traceback through (a bug)."""
    if isinstance(error, DataError):
        return str(error)
    if isinstance(error, OSError):
        return _os_message(error)
    if isinstance(error, sqlite3.OperationalError):
        return _sqlite_message(error)
    return None


def _os_message(error: OSError) -> str | None:
    where = f" ({error.filename})" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device{where}: free some space (df -h .), then re-run: finished rows are kept"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied{where}: make it writable (chmod u+w), or run where you may write"
    if error.errno == errno.ENOENT and error.filename:
        return f"{error.filename} does not exist"
    return None


def _sqlite_message(error: sqlite3.OperationalError) -> str | None:
    text = str(error)
    if "readonly" in text or "read-only" in text:
        return "the results database is read-only: `chmod u+w` it (and its folder), then re-run"
    if "locked" in text or "busy" in text:
        return "the results database is locked by another program (a `make duckdb` shell?): close it, then re-run"
    if "disk is full" in text or "database or disk is full" in text:
        return "no space left for the results database: free some space, then re-run (finished rows are kept)"
    if "unable to open" in text:
        return "the results database cannot be opened: check that its folder exists and is writable"
    return None
