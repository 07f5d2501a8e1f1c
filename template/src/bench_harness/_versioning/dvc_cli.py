"""DVC's own command line, run inside this process instead of a new `dvc` process.

Template-owned. A `dvc` process spends about half a second importing DVC before it does anything, and
`make experiment` runs four of them (status, add, push, the push's check): two seconds of a five-second
experiment on the demo. Here DVC is imported once, and each command goes through `dvc.cli.main`, the
function the `dvc` executable calls (DVC's own test suite calls it the same way, many times in one
process), so arguments, exit codes and messages are exactly the executable's.

What a separate process gave for free is restored around each call: the working directory (DVC finds
the repository from it), the environment of `env.tool_env()` (no analytics, no prompts) and the
captured output, which `versioning.failure_cause` reads. DVC's log handlers hold the streams of the
moment DVC was imported, so they are pointed at the capture for the call too.

Where DVC cannot be imported here (the project's environment lacks it, DVC is installed elsewhere) the
caller runs the executable as before.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._core.env import tool_env

DVC_LOGGERS = ("dvc", "dvc_objects", "dvc_data")


def available() -> bool:
    """Whether DVC's command line can be imported into this process."""
    try:
        import dvc.cli  # noqa: F401
    except ImportError:
        return False
    return True


def run(root: Path, args: Sequence[str]) -> subprocess.CompletedProcess:
    """`dvc <args>` in `root`, in this process: the return code and output the executable would give."""
    from dvc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _in_folder(root), _environment(tool_env()), _captured(out, err):
        code = main(list(args))
    return subprocess.CompletedProcess(["dvc", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _in_folder(root: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _environment(wanted: dict[str, str]) -> Iterator[None]:
    """os.environ as `wanted` for the call (DVC reads DVC_NO_ANALYTICS, git reads its prompts), then back."""
    saved = dict(os.environ)
    os.environ.update(wanted)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _captured(out: io.StringIO, err: io.StringIO) -> Iterator[None]:
    """sys.stdout/stderr and DVC's log handlers (warnings and errors to `err`, the rest to `out`); an
    empty stdin, as the executable had (nothing may wait for a terminal)."""
    found = (handler for name in DVC_LOGGERS for handler in logging.getLogger(name).handlers)
    handlers = list(dict.fromkeys(handler for handler in found if isinstance(handler, logging.StreamHandler)))
    streams = [handler.stream for handler in handlers]
    for handler in handlers:  # assigned, not setStream(): that flushes the old stream, maybe closed by now
        handler.stream = err if handler.level >= logging.WARNING else out
    stdin, sys.stdin = sys.stdin, io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        sys.stdin = stdin
        for handler, stream in zip(handlers, streams, strict=True):
            handler.stream = stream
