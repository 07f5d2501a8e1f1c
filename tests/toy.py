"""A tiny benchmark project written by hand, for testing the harness in-process without rendering.

The harness (`template/src/bench_harness`) is plain Python with a fixed name: tests import it from
the template's source directly. A toy user package (`toy_bench`) and a `benchmark.toml` are written
into a temporary folder; `BENCH_ROOT` points the harness at it. A test costs milliseconds, not the
15 s of a render and `uv sync`.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HARNESS_SRC = Path(__file__).resolve().parents[1] / "template" / "src"
PACKAGE = "toy_bench"

BENCHMARK_TOML = """\
[project]
name = "toy-bench"
package = "{package}"
kind = "classification"
questions = ["Which model is right most often?"]

[data]
path = "data/sample.jsonl"
format = "jsonl"
size = "small"
ground_truth = "label"

[database]
path = "benchmark.db"
engine = "{engine}"
predictions_table = "predictions"
metrics_table = "metrics"
dev_path = "dev_benchmark.db"

[run]
executor = "serial"
workers = 2
cache = true
log_system_params = false
max_retries = 2
backoff_base_seconds = 0.0
backoff_max_seconds = 0.0
max_error_rate = 1.0
min_rows_for_error_stop = 50
write_batch_size = 10000
write_interval_seconds = 1.0
dev_limit = 5

[analysis]
metrics = ["accuracy", "latency_p50", "error_rate"]
segmentations = ["difficulty"]

[versioning]
level = "minimal"
dvc_remote = ""
"""

PARAMS = '''
"""Toy parameters: which rule predicts the label."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Params:
    model_name: str = "parity"
    offset: int = 0


def grid() -> list[Params]:
    return [Params("parity"), Params("always_even")]
'''

PREDICT = '''
"""Toy predict: the label is the parity of x; one model knows it, one always says 0."""

from __future__ import annotations

from typing import Any

from bench_harness import INVALID_VALUE, BenchmarkError

PREDICT_VERSION: str | None = None


def predict(item: dict[str, Any], params: Any) -> dict[str, Any]:
    if not isinstance(item.get("x"), int):
        raise BenchmarkError(f"x is not an int: {item.get('x')!r}", INVALID_VALUE)
    value = (item["x"] + params.offset) % 2 if params.model_name == "parity" else 0
    return {"prediction": value, "raw_response": f"answer={value}"}
'''

DATA = '''
"""Toy data: the bundled jsonl, in file order."""

from __future__ import annotations

from typing import Any

from bench_harness import dataset


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    return [dict(r) for r in dataset()][:limit]
'''

SCORING = '''
"""Toy scoring: the stored prediction as it is."""

from __future__ import annotations

from typing import Any


def parse_prediction(row: dict[str, Any]) -> Any:
    return row.get("prediction")
'''


def sample_items(n: int = 12) -> list[dict[str, Any]]:
    """Items whose label is the parity of x, with a difficulty segment."""
    return [
        {"input_id": i, "x": i * 7, "label": (i * 7) % 2, "difficulty": "hard" if i % 3 else "easy"} for i in range(n)
    ]


def write_project(
    root: Path,
    *,
    engine: str = "sqlite",
    items: list[dict[str, Any]] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write benchmark.toml, the toy package and its data under `root`; `files` overrides module sources."""
    import json

    package = root / "src" / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (root / "benchmark.toml").write_text(BENCHMARK_TOML.format(package=PACKAGE, engine=engine))
    sources = {
        "__init__": '"""Toy benchmark."""\n',
        "params": PARAMS,
        "predict": PREDICT,
        "data": DATA,
        "scoring": SCORING,
        **(files or {}),
    }
    for name, source in sources.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source).lstrip())
    data = root / "data" / "sample.jsonl"
    data.parent.mkdir(exist_ok=True)
    data.write_text("".join(json.dumps(item) + "\n" for item in (items if items is not None else sample_items())))
    return root


def forget_modules() -> None:
    """Drop imported toy and harness modules and the harness's per-process caches."""
    for name in list(sys.modules):
        if (
            name == PACKAGE
            or name.startswith(PACKAGE + ".")
            or name == "bench_harness"
            or name.startswith("bench_harness.")
        ):
            del sys.modules[name]
    importlib.invalidate_caches()


def activate(root: Path, monkeypatch: Any) -> Iterator[Path]:
    """Point the harness at `root` for one test (BENCH_ROOT, sys.path), fresh modules before and after."""
    monkeypatch.setenv("BENCH_ROOT", str(root))
    monkeypatch.delenv("BENCH_DB", raising=False)
    monkeypatch.delenv("BENCH_DEV_DB", raising=False)
    monkeypatch.syspath_prepend(str(root / "src"))
    monkeypatch.syspath_prepend(str(HARNESS_SRC))
    forget_modules()
    yield root
    forget_modules()


OLD_STYLE_PREDICT = '''
"""Toy predict returning the full row itself (the contract before the harness owned the envelope)."""

from bench_harness import segment_fields


def predict(item, params):
    value = item["x"] % 2 if params.model_name == "parity" else 0
    return {"input_id": item["input_id"], "prediction": value, "raw_response": str(value),
            "ground_truth": item["label"], "latency": 0.001, "error": None, "error_type": None,
            **segment_fields(item, params=params)}
'''


def record_experiments(root: Path, monkeypatch: Any, versions: tuple[str, ...] = ("e0.0.1", "e0.0.2")) -> Path:
    """Run the toy at `root` once per version (runner + metrics, no git): the database the harness writes."""
    for _ in activate(root, monkeypatch):
        from bench_harness._core.config import load_config
        from bench_harness._results import metrics
        from bench_harness._run import runner

        cfg = load_config()
        for version in versions:
            summary = runner.run(cfg, runner.RunOptions(experiment_version=version, show_progress=False))
            metrics.log_metrics(cfg, summary)
        return cfg.db_path
    raise AssertionError("unreachable")


# Columns that legitimately differ between two runs of the same predictions (time, run, machine).
RUN_VOLATILE_COLUMNS = frozenset(
    {
        "track_id",
        "timestamp",
        "function_time",
        "latency",
        "experiment_version",
        "cache",
        "code_commit",
        "git_branch",
        "git_dirty",
        "data_commit",
        "python_version",
        "os",
        "hostname",
        "packages",
        "cpu",
        "memory_percent",
        "p_memory_percent",
        "disk_percent",
    }
)


def dump_database(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in rowid order: what "the same database, row for row" compares."""
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in names}
    finally:
        con.close()
