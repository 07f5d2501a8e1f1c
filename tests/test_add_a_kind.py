"""Adding a kind touches nothing outside kinds/<kind>/: a new kind, in a temporary copy of this repository,
renders, passes its generated `make test` and runs `make experiment` with the rows it should.

The kind ("parity": is a number even or odd?) is written here, folder only: its manifest kind.yml, predict.py,
data.py, scoring.py, a small sample.jsonl and a README section. Rendered with tasks (git, uv sync): ~1 minute.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import pytest
from conftest import make
from copier import run_copy
from test_update import copy_working_tree, git

KIND = "parity"
NUMBERS = [3, 8, 15, 22, 41, 50, 67, 74, 89, 96, 101, 118]
SAMPLE = [
    {"input_id": f"n-{i:02d}", "number": n, "label": "even" if n % 2 == 0 else "odd", "difficulty": "easy" if n < 60
     else "hard"} for i, n in enumerate(NUMBERS)
]  # fmt: skip

KIND_YML = """\
# The parity kind's manifest: written by tests/test_add_a_kind.py.
label: "Parity (is a number even or odd? a test kind)"
menu_order: 99
questions: ["Which method tells even from odd?"]
params:
  - {name: method, type: str, default: modulo, values: [modulo, always_even]}
segmentations: [difficulty]
metrics:
  default: [accuracy, latency_p50, error_rate]
  allowed: [accuracy]
scoring:
  correct: equal
  quality: accuracy
data:
  ground_truth: label
run:
  executor: serial
  log_system_params: false
dependencies:
  packages: []
extra_files: []
"""

PREDICT = '''\
"""predict(): the parity of one number. YOURS."""

from __future__ import annotations

import json
import time
from typing import Any

from bench_harness import MISSING_FIELD, segment_fields

from .params import Params

PREDICT_VERSION: str | None = None


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """'even' or 'odd'; an item without a number is an error row."""
    start = time.perf_counter()
    row: dict[str, Any] = {
        "input_id": item.get("input_id"),
        "prediction": None,
        "raw_response": None,
        "ground_truth": item.get("label"),
        "error": None,
        "error_type": None,
        **segment_fields(item, params=params),
    }
    if not isinstance(item.get("number"), int):
        row.update(error="the item has no integer number", error_type=MISSING_FIELD)
    else:
        answer = "even" if params.method == "always_even" or item["number"] % 2 == 0 else "odd"
        row.update(prediction=answer, raw_response=json.dumps({"answer": answer}))
    row["latency"] = time.perf_counter() - start
    return row
'''

DATA = '''\
"""Loading the dataset. YOURS."""

from __future__ import annotations

from typing import Any

from bench_harness import dataset


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    """Every item of the dataset, in a stable order."""
    return [dict(r) for r in dataset()][:limit]
'''

SCORING = '''\
"""Scoring: the stored prediction is compared as it is. YOURS."""

from __future__ import annotations

from typing import Any


def parse_prediction(row: dict[str, Any]) -> Any:
    """The stored prediction."""
    return row.get("prediction")
'''

README = "`predict.py` says whether a number is even or odd (a test kind).\n"


def copy_of_this_repository(destination: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of this repository, committed in a new git repository."""
    copy_working_tree(destination)
    git(destination, "init", "--quiet")
    git(destination, "add", "-A")
    git(destination, "commit", "--quiet", "--no-verify", "-m", "the template")
    return destination


def add_the_kind(repo: Path) -> None:
    folder = repo / "kinds" / KIND
    folder.mkdir()
    files = {"kind.yml": KIND_YML, "predict.py": PREDICT, "data.py": DATA, "scoring.py": SCORING, "README.md": README}
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "sample.jsonl").write_text("".join(json.dumps(item) + "\n" for item in SAMPLE))
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--no-verify", "-m", f"kind {KIND}")


def latest_rows(project: Path, table_key: str) -> list[dict]:
    config = tomllib.loads((project / "benchmark.toml").read_text())
    table = config["database"][table_key]
    with sqlite3.connect(project / config["database"]["path"]) as con:
        con.row_factory = sqlite3.Row
        version = con.execute(f'SELECT experiment_version FROM "{table}" ORDER BY rowid DESC LIMIT 1').fetchone()[0]
        rows = [dict(r) for r in con.execute(f'SELECT * FROM "{table}" WHERE experiment_version = ?', (version,))]
    con.close()
    return rows


@pytest.mark.slow
def test_a_kind_added_in_its_folder_alone_renders_tests_and_runs(tmp_path: Path) -> None:
    repo = copy_of_this_repository(tmp_path / "template")
    add_the_kind(repo)
    changed = git(repo, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert changed and all(name.startswith(f"kinds/{KIND}/") for name in changed), changed

    project = tmp_path / "project"
    run_copy(str(repo), str(project), data={"kind": KIND}, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    config = tomllib.loads((project / "benchmark.toml").read_text())
    assert config["project"]["kind"] == KIND and config["data"]["ground_truth"] == "label"
    assert config["analysis"]["metrics"] == ["accuracy", "latency_p50", "error_rate"]
    assert config["analysis"]["segmentations"] == ["difficulty"]
    assert "parity" in (project / "README.md").read_text()

    tested = make(project, "test")
    assert " passed" in tested.stdout and " failed" not in tested.stdout, tested.stdout[-3000:]
    done = make(project, "experiment")
    assert " 0 errors" in done.stdout, done.stdout[-3000:]

    predictions = latest_rows(project, "predictions_table")
    assert len(predictions) == len(SAMPLE) * 2
    assert {r["difficulty"] for r in predictions} == {"easy", "hard"}
    metrics = {r["params_method"]: r for r in latest_rows(project, "metrics_table")}
    evens = sum(item["label"] == "even" for item in SAMPLE) / len(SAMPLE)
    assert metrics["modulo"]["accuracy"] == 1.0 and metrics["modulo"]["n"] == len(SAMPLE)
    assert metrics["always_even"]["accuracy"] == pytest.approx(evens)
    assert all(r["error_rate"] == 0 and r["latency_p50"] >= 0 for r in metrics.values())
