"""Dask workers prove which predict code they ran (issue 13 point 4) and load it once (issue 16).

In-process tests of the worker-side check (bench_harness/_run/workercode.py), then runs of the toy
benchmark against a real cluster: `dask scheduler` and `dask worker` processes on 127.0.0.1, as a
user starts them, long-lived across runs while predict.py is edited between runs.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from toy import HARNESS_SRC, PREDICT, activate, write_project

pytest.importorskip("distributed")

VENV_BIN = Path(sys.executable).parent

# The toy predict, logging each execution of the module (the worker's pid) when TOY_IMPORT_LOG is set.
FUTURE = "from __future__ import annotations\n"
LOGGED_PREDICT = PREDICT.replace(
    FUTURE,
    FUTURE + "\nimport os as _os\n\nif _os.environ.get('TOY_IMPORT_LOG'):\n"
    "    with open(_os.environ['TOY_IMPORT_LOG'], 'a') as _log:\n"
    "        _log.write(f'{_os.getpid()}\\n')\n",
)
OLD_RETURN = 'return {"prediction": value, '


def changed_predict(offset: int) -> str:
    """The logged toy predict returning `offset` more than the original (the values prove which code ran)."""
    assert OLD_RETURN in PREDICT
    return LOGGED_PREDICT.replace(OLD_RETURN, f'return {{"prediction": value + {offset}, ')


# --- the worker-side check, in process -------------------------------------------------------------


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A fresh importable package (unique name) with a module `mod`: (module name, its file)."""
    name = f"wc_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}.mod", root / "mod.py"
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def write_module(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()  # a new mtime even within the filesystem's granularity: caches see the edit
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def main_version(name: str) -> str:
    """What the main process records rows under: keys.code_version of a freshly imported module."""
    import importlib

    from bench_harness._storage import keys

    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    version = keys.code_version(module)
    sys.modules.pop(name, None)
    return version


@pytest.mark.parametrize(
    "source",
    [
        "def predict(item, params):\n    return {'prediction': 1}\n",
        "def predict(item, params):\n    return {'prediction': 1}",  # no final newline
        "def predict(item, params):\r\n    return {'prediction': 1}\r\n",
        "PREDICT_VERSION = '7'\n\ndef predict(item, params):\n    return {'prediction': 1}\n",
        "def CACHE_CONTEXT():\n    return {'model': 'm'}\n\ndef predict(item, params):\n    return {}\n",
        "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n",
    ],
    ids=["plain", "no-final-newline", "crlf", "predict-version", "cache-context", "latin-1"],
)
def test_worker_version_of_loaded_code_is_the_main_process_code_version(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.syspath_prepend(str(HARNESS_SRC))
    from bench_harness._run import workercode

    name, path = package
    path.write_bytes(source.encode("latin-1" if "latin-1" in source else "utf-8"))
    expected = main_version(name)
    module = workercode.ensure_code(name, expected)
    assert workercode.version_in_memory(module) == expected


def test_a_module_imported_before_the_edit_is_reloaded_and_runs_the_new_code(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HARNESS_SRC))
    import importlib

    from bench_harness._run import workercode

    name, path = package
    write_module(path, "def predict(item, params):\n    return 'old'\n")
    old = importlib.import_module(name)  # as a worker unpickling predict would: no recorded source
    write_module(path, "def predict(item, params):\n    return 'new'\n")
    new_version = main_version(name)
    sys.modules[name] = old
    # The bug: the file on disk already digests to the new version, while memory runs the old code.
    from bench_harness._storage import keys

    assert keys.code_version(old) == new_version and old.predict(None, None) == "old"
    assert workercode.version_in_memory(old).startswith("unknown")
    module = workercode.ensure_code(name, new_version)
    assert module is not old and module.predict(None, None) == "new"
    assert sys.modules[name] is module
    assert workercode.ensure_code(name, new_version) is module  # proven: kept, not loaded again


def test_a_worker_whose_file_is_another_version_refuses_without_running_it(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(HARNESS_SRC))
    from bench_harness._run import workercode

    name, path = package
    log = tmp_path / "executions.log"
    body = f"open({str(log)!r}, 'a').write('x')\n\ndef predict(item, params):\n    return {{!r}}\n"
    write_module(path, body.format("v1"))
    v1 = main_version(name)
    write_module(path, body.format("v2"))
    v2 = main_version(name)
    write_module(path, body.format("v1"))
    loaded = workercode.ensure_code(name, v1)
    log.write_text("")
    write_module(path, body.format("v2"))  # the worker's checkout moved on, the run's is another one
    write_module(path, body.format("v3"))
    with pytest.raises(workercode.StaleCode) as refused:
        workercode.ensure_code(name, v2)
    message = str(refused.value)
    assert v2 in message and f"{v1} in memory" in message, message
    assert log.read_text() == "", "a file that is not the run's code must not be executed"
    assert sys.modules[name] is loaded and workercode.ensure_code(name, v1) is loaded


def test_a_worker_with_another_cache_context_refuses(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HARNESS_SRC))
    from bench_harness._run import workercode

    name, path = package
    write_module(path, "import os\n\ndef CACHE_CONTEXT():\n    return {'url': os.environ['WC_URL']}\n")
    monkeypatch.setenv("WC_URL", "http://main")
    expected = main_version(name)
    monkeypatch.setenv("WC_URL", "http://worker")
    with pytest.raises(workercode.StaleCode, match="CACHE_CONTEXT differs"):
        workercode.ensure_code(name, expected)


# --- a real cluster: `dask scheduler` and `dask worker` processes ------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in its own group (its nanny's workers too), so teardown stops all of them."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


class Cluster:
    """A scheduler and its workers on 127.0.0.1; `add_workers` starts `dask worker` for one project."""

    def __init__(self, folder: Path, project: Path):
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []
        self.expected_workers = 0
        port = self.address.rsplit(":", 1)[1]
        scheduler = [str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
        # The scheduler unpickles the tasks (harness classes, the user's Params): the project's environment.
        self.processes.append(start(scheduler, self.env(PYTHONPATH=self.pythonpath(project)), folder / "scheduler.log"))

    @staticmethod
    def pythonpath(project: Path) -> str:
        return os.pathsep.join([str(project / "src"), str(HARNESS_SRC)])

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "PYTEST_", "PYTHONPATH"))}
        env.update(DASK_DISTRIBUTED__WORKER__DAEMON="False", **extra)
        return env

    def add_workers(self, project: Path, count: int, import_log: Path) -> None:
        env = self.env(
            PYTHONPATH=self.pythonpath(project),
            BENCH_ROOT=str(project),
            TOY_IMPORT_LOG=str(import_log),
        )
        command = [str(VENV_BIN / "dask"), "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1"]
        command += ["--nworkers", str(count), "--no-dashboard", "--local-directory", str(self.folder / "work")]
        self.processes.append(start(command, env, self.folder / f"workers-{len(self.processes)}.log"))
        self.expected_workers += count
        self.wait_for_workers()

    def wait_for_workers(self) -> None:
        from distributed import Client

        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(self.address, timeout=10) as client:
                    client.wait_for_workers(self.expected_workers, timeout=60)
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise

    def worker_pids(self, project_src: Path) -> dict[str, int]:
        """Worker address -> pid, for the workers importing the toy package from `project_src`."""
        from distributed import Client

        def where() -> tuple[int, str]:
            import toy_bench

            return os.getpid(), str(Path(toy_bench.__file__).parent.parent)

        with Client(self.address, timeout=10) as client:
            found = client.run(where)
        return {address: pid for address, (pid, src) in found.items() if src == str(project_src)}

    def close(self) -> None:
        for process in reversed(self.processes):
            stop(process)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The user's checkout: a toy project whose package the long-lived workers import (root, import log)."""
    root = write_project(tmp_path_factory.mktemp("shared"), files={"predict": LOGGED_PREDICT})
    return root, root / "imports.log"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, shared: tuple[Path, Path]) -> Iterator[Cluster]:
    """`dask scheduler` + `dask worker --nworkers 2` on the shared checkout; stopped whatever happens."""
    root, log = shared
    running = Cluster(tmp_path_factory.mktemp("dask"), root)
    try:
        running.add_workers(root, 2, log)
        yield running
    finally:
        running.close()


def run_toy(root: Path, monkeypatch: pytest.MonkeyPatch, version: str, **options: Any) -> Any:
    """One `bench run` of the toy at `root`, as a new command: freshly imported modules."""
    for _ in activate(root, monkeypatch):
        from bench_harness._core.config import load_config
        from bench_harness._run import runner

        options = {"experiment_version": version, "show_progress": False, **options}
        return runner.run(load_config(), runner.RunOptions(**options))
    raise AssertionError("unreachable")


def predictions(root: Path, version: str) -> list[tuple[Any, ...]]:
    """(model, x, prediction, code_version) of every row of `version`."""
    sql = (
        "SELECT params_model_name, CAST(input_id AS INTEGER), prediction, code_version FROM predictions "
        "WHERE experiment_version = ? ORDER BY 1, 2"
    )
    with sqlite3.connect(root / "benchmark.db") as con:
        return con.execute(sql, (version,)).fetchall()


def expected_predictions(offset: int) -> list[tuple[str, int, int]]:
    """What the toy's predict + `offset` returns for every (model, input) of the sample."""
    rows = [("always_even", i, offset) for i in range(12)]
    rows += [("parity", i, (i * 7) % 2 + offset) for i in range(12)]
    return sorted(rows)


def values(rows: list[tuple[Any, ...]]) -> list[tuple[str, int, int]]:
    return [(model, input_id, int(prediction)) for model, input_id, prediction, _ in rows]


@pytest.mark.slow  # a real `dask scheduler` and `dask worker`: the full tier
def test_edited_predict_reaches_long_lived_workers_and_the_cache(
    cluster: Cluster, shared: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, import_log = shared
    dask = {"executor": "dask", "scheduler": cluster.address}

    first = run_toy(root, monkeypatch, "e-old", **dask)
    assert first.computed == 24
    old = predictions(root, "e-old")
    assert values(old) == expected_predictions(0)
    pids = set(cluster.worker_pids(root / "src").values())
    assert len(pids) == 2
    imports = Counter(int(line) for line in import_log.read_text().split())
    # Warm-up: each worker executed predict.py exactly once for 24 one-task chunks.
    assert {pid: imports[pid] for pid in pids} == dict.fromkeys(pids, 1), imports

    write_module(root / "src" / "toy_bench" / "predict.py", changed_predict(10))  # a commit changed predict
    second = run_toy(root, monkeypatch, "e-new", **dask)
    new = predictions(root, "e-new")
    assert second.computed == 24 and second.cache_hits == 0
    assert {row[3] for row in new} != {row[3] for row in old}
    assert values(new) == expected_predictions(10), "old code's values recorded under the new code version"
    imports = Counter(int(line) for line in import_log.read_text().split())
    assert {pid: imports[pid] for pid in pids} == dict.fromkeys(pids, 2)  # reloaded once, on every worker

    later = run_toy(root, monkeypatch, "e-serial", executor="serial")
    assert later.cache_hits == 24 and later.computed == 0
    assert values(predictions(root, "e-serial")) == expected_predictions(10)


@pytest.mark.slow  # a real `dask scheduler` and `dask worker`: the full tier
def test_workers_running_another_predict_are_refused_and_nothing_is_recorded(
    cluster: Cluster, shared: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # This checkout's predict.py differs from the workers' (another machine, another commit).
    root = write_project(tmp_path / "other", files={"predict": changed_predict(100)})
    from_dask = {"executor": "dask", "scheduler": cluster.address}
    with pytest.raises(SystemExit) as refused:
        run_toy(root, monkeypatch, "e-refused", **from_dask)
    message = str(refused.value)
    assert type(refused.value).__name__ == "StaleWorkerCodeError"
    assert "REFUSED 24 of 24 tasks" in message and "restart the workers" in message, message
    with sqlite3.connect(root / "benchmark.db") as con:  # the table exists, no row was ever written to it
        assert con.execute("SELECT COUNT(*) FROM predictions").fetchone() == (0,)

    later = run_toy(root, monkeypatch, "e-serial", executor="serial")
    assert later.cache_hits == 0 and later.computed == 24
    assert values(predictions(root, "e-serial")) == expected_predictions(100)


@pytest.mark.slow  # a real `dask scheduler` and `dask worker`: the full tier
def test_tasks_go_only_to_the_workers_that_run_the_runs_code(
    cluster: Cluster, shared: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = write_project(tmp_path / "mine", files={"predict": changed_predict(200)})
    cluster.add_workers(root, 1, tmp_path / "imports.log")  # a worker on this checkout, beside the others
    summary = run_toy(root, monkeypatch, "e-mixed", executor="dask", scheduler=cluster.address)
    assert summary.computed == 24
    assert values(predictions(root, "e-mixed")) == expected_predictions(200)
