"""Workers prove which predict code they run: the version of the code in memory, not of the file on disk.

Template-owned. A long-lived worker (a `dask worker` process) keeps the user's predict module it
imported, while `keys.code_version` in the main process digests predict.py as it is on disk now.
After a commit changed predict.py, such a worker would run the OLD predict and its rows would be
recorded under the NEW code version, then served as cache hits (issue 13). Asking the worker for
`keys.code_version(module)` does not help: `inspect.getsource` reads the file on disk, which may
already be the new one.

So a worker records the digest of the source text it EXECUTES, when it loads the module here
(`load_from_source`: the text is read once, digested, compiled and run; a module imported any
other way has no recorded digest, so what it runs is unknown). Every chunk of tasks carries the
run's expected code version; `ensure_code` on the worker:

1. keeps the module in memory when its recorded version is the run's (the usual case: no I/O);
2. otherwise loads predict.py from the worker's disk, when that file is the run's code (the
   user edited predict.py and the worker shares the checkout): the worker runs the new code;
3. otherwise raises `StaleCode` (the worker's copy of predict.py is another one, it does not
   import, or its CACHE_CONTEXT differs): the chunk comes back refused, never as rows.

The version is built exactly as `keys.code_version` builds it (tests/test_dask_workers.py checks
they agree): "v:<PREDICT_VERSION>" of the module in memory, or "src:<sha256 of its source>",
plus "+ctx:<digest>" of CACHE_CONTEXT evaluated in the worker (another endpoint in the worker's
environment gives other answers).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
import tokenize
from types import ModuleType

from .._storage import keys

# Module name -> (the module object loaded here, the version of the source text it executed).
_LOADED: dict[str, tuple[ModuleType, str]] = {}
# (name, expected) -> (the file's stat, why it was refused): a refused file is not executed again until it changes.
_REFUSED: dict[tuple[str, str], tuple[tuple[int, int] | None, str]] = {}
# One load at a time: a worker with several threads runs several chunks at once.
_LOCK = threading.RLock()


class StaleCode(Exception):
    """This worker cannot run the run's predict code: the message says what it has instead."""


def source_version(text: str) -> str:
    """The "src:" digest of a module's source text, exactly as keys.code_version computes it."""
    return "src:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def read_source(path: str) -> str:
    """The source text as `inspect.getsource` returns it for a module (linecache's reading).

    Decoded by its coding cookie, universal newlines, and a final newline added when missing.
    """
    with tokenize.open(path) as handle:
        text = handle.read()
    return text if not text or text.endswith("\n") else text + "\n"


def version_of(module: ModuleType, source: str | None) -> str:
    """The code version of `module` whose executed source was `source` (None: not known)."""
    explicit = getattr(module, "PREDICT_VERSION", None)
    if explicit:
        version = f"v:{explicit}"
    elif source is None:
        return "unknown (imported before the harness could record its source)"
    else:
        version = source
    context = getattr(module, keys.CONTEXT_HOOK, None)
    return version if context is None else f"{version}+ctx:{keys.context_digest(context)}"


def version_in_memory(module: ModuleType) -> str:
    """The version of the code this process actually runs for `module` (not of its file on disk now)."""
    loaded = _LOADED.get(module.__name__)
    return version_of(module, loaded[1] if loaded is not None and loaded[0] is module else None)


def load_from_source(name: str) -> ModuleType:
    """(Re)load module `name` by executing its file's current text, recording that text's version.

    The module is a new object in sys.modules (and on its parent package); references to the old
    one elsewhere keep the old code, so callers resolve predict from the returned module.
    """
    importlib.invalidate_caches()
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.has_location:
        raise StaleCode(f"{name} is not importable from a source file on this worker")
    text = read_source(spec.origin)
    module = importlib.util.module_from_spec(spec)
    code = compile(text, spec.origin, "exec", dont_inherit=True)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - what `import` does, with the text we digested
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    _LOADED[name] = (module, source_version(text))
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def ensure_code(name: str, expected: str) -> ModuleType:
    """Module `name` running the code version `expected`: kept, reloaded from disk, or StaleCode."""
    with _LOCK:
        module = sys.modules.get(name)
        in_memory = version_in_memory(module) if module is not None else "not imported"
        if in_memory == expected:
            return module
        stat = _file_stat(name)
        refused = _REFUSED.get((name, expected))
        if refused is not None and refused[0] == stat and stat is not None:
            raise StaleCode(refused[1])
        on_disk = _disk_version(name, expected)
        if on_disk == expected:
            _REFUSED.pop((name, expected), None)
            return sys.modules[name]
        why = _explain(name, expected, in_memory, on_disk)
        _REFUSED[(name, expected)] = (stat, why)
        raise StaleCode(why)


def _file_stat(name: str) -> tuple[int, int] | None:
    """(mtime in ns, size) of the module's file, or None when it has none."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.has_location:
            return None
        found = os.stat(spec.origin)
    except (ImportError, OSError, ValueError):
        return None
    return found.st_mtime_ns, found.st_size


def _disk_version(name: str, expected: str) -> str:
    """The version of the worker's file for `name`, loaded when it may be `expected`."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.has_location and expected.startswith("src:"):
            # Without PREDICT_VERSION the file's digest decides: a different file is never executed.
            digest = source_version(read_source(spec.origin))
            if digest != expected.split("+ctx:")[0]:
                return digest
        return version_in_memory(load_from_source(name))
    except StaleCode as error:
        return f"unusable ({error})"
    except Exception as error:  # noqa: BLE001 - a file that does not import is this worker's state, reported
        return f"unusable ({type(error).__name__}: {error})"


def _explain(name: str, expected: str, in_memory: str, on_disk: str) -> str:
    if on_disk.split("+ctx:")[0] == expected.split("+ctx:")[0] and "+ctx:" in expected:
        why = "its CACHE_CONTEXT differs (another endpoint or model in the worker's environment?)"
    else:
        why = f"its predict code is {in_memory} in memory and {on_disk} in its file"
    return f"{name}: the run's code is {expected}, {why}"
