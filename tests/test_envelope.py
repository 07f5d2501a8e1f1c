"""The row envelope (issue 12 item 2, issue 13 point 2, issue 14 row 13), in-process on the toy benchmark.

predict() returns a prediction and its raw output, or raises; the harness records the full row:
input_id, ground truth, latency, the classified error with its traceback, the segmentation fields,
and only values JSON can hold. Each test runs the harness's runner against tests/toy.py's project
(no render): milliseconds.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

NEW_STYLE_COLUMNS = ("input_id", "prediction", "raw_response", "ground_truth", "latency", "error", "error_type")


def run(version: str = "t1", executor: str = "serial", **options: Any) -> Any:
    from bench_harness._core.config import load_config
    from bench_harness._run import runner

    return runner.run(
        load_config(), runner.RunOptions(experiment_version=version, executor=executor, show_progress=False, **options)
    )


def rows(root: Path, version: str = "t1") -> list[dict[str, Any]]:
    with sqlite3.connect(root / "benchmark.db") as con:
        con.row_factory = sqlite3.Row
        found = con.execute("SELECT * FROM predictions WHERE experiment_version = ? ORDER BY rowid", (version,))
        return [dict(row) for row in found]


def use_predict(root: Path, source: str) -> None:
    """Replace the toy's predict.py (the harness is re-imported by the next test anyway)."""
    import importlib
    import sys

    (root / "src" / "toy_bench" / "predict.py").write_text(textwrap.dedent(source).lstrip())
    sys.modules.pop("toy_bench.predict", None)
    importlib.invalidate_caches()


def items() -> list[dict[str, Any]]:
    import toy

    return toy.sample_items()


def test_every_envelope_column_is_added_by_the_harness(toy: Path) -> None:
    summary = run()
    recorded = rows(toy)
    assert summary.computed == len(recorded) == 24 and summary.errors == 0
    by_item = {item["input_id"]: item for item in items()}
    for row in recorded:
        item = by_item[row["input_id"]]
        assert row["ground_truth"] == item["label"]
        assert row["difficulty"] == item["difficulty"], "segment computed from the item"
        assert row["error"] is None and row["error_type"] is None and row.get("traceback") is None
        assert isinstance(row["latency"], float) and 0 <= row["latency"] < 1
        expected = item["x"] % 2 if row["params_model_name"] == "parity" else 0
        assert row["prediction"] == expected and row["raw_response"] == f"answer={expected}"


def test_predict_row_is_exactly_the_recorded_row(toy: Path) -> None:
    from toy_bench.params import grid

    from bench_harness import predict_row

    run()
    recorded = rows(toy)[0]
    row = predict_row(items()[0], grid()[0])
    assert set(NEW_STYLE_COLUMNS) <= set(row)
    assert {k: v for k, v in row.items() if k != "latency"} == {k: recorded[k] for k in row if k != "latency"}
    json.dumps(row)


def test_predicts_own_latency_and_ground_truth_win(toy: Path) -> None:
    use_predict(
        toy,
        """
        def predict(item, params):
            return {"prediction": 1, "raw_response": "r", "latency": 123.0, "ground_truth": "own", "tokens": 7}
    """,
    )
    row = rows(toy) if run() else None
    assert {(r["latency"], r["ground_truth"], r["tokens"]) for r in row} == {(123.0, "own", 7)}


def test_ground_truth_comes_from_the_configured_field(toy: Path) -> None:
    toml = toy / "benchmark.toml"
    toml.write_text(toml.read_text().replace('ground_truth = "label"', 'ground_truth = "x"'))
    run()
    assert all(row["ground_truth"] == row["input_id"] * 7 for row in rows(toy))


@pytest.mark.parametrize(
    ("raised", "category"),
    [
        ("KeyError('feature')", "MISSING_FIELD"),
        ("ValueError('bad number')", "INVALID_VALUE"),
        ("json.JSONDecodeError('no json', 'x', 0)", "PARSE_ERROR"),
        ("RuntimeError('boom')", "UNKNOWN"),
        ("BenchmarkError('refused', CLIENT_ERROR)", "CLIENT_ERROR"),
    ],
)
def test_an_exception_becomes_a_classified_error_row_with_its_traceback(toy: Path, raised: str, category: str) -> None:
    use_predict(
        toy,
        f"""
        import json
        from bench_harness import CLIENT_ERROR, BenchmarkError

        def predict(item, params):
            raise {raised}
    """,
    )
    summary = run()
    recorded = rows(toy)
    assert summary.errors == len(recorded) == 24 and summary.retries == 0, "not transient: never retried"
    for row in recorded:
        assert row["error_type"] == category
        assert row["error"].startswith(raised.split("(")[0].split(".")[-1] + ":")
        assert f"raise {raised}" in row["traceback"], "the traceback points at the user's line"
        assert row["prediction"] is None and row["ground_truth"] is not None and row["difficulty"]


def test_a_transient_error_is_retried_then_recorded(toy: Path) -> None:
    use_predict(
        toy,
        """
        def predict(item, params):
            raise TimeoutError("slow server")
    """,
    )
    summary = run(limit=2)
    assert summary.retries == 2 * 2 * 2, "max_retries=2 per task, 4 tasks"
    assert {(r["error_type"], r["retry_count"]) for r in rows(toy)} == {("API_TIMEOUT", 2)}


def test_a_failing_predict_keeps_its_partial_output(toy: Path) -> None:
    use_predict(
        toy,
        """
        from bench_harness import PARSE_ERROR, BenchmarkError

        def predict(item, params):
            raise BenchmarkError("no answer in the reply", PARSE_ERROR, raw_response="I think... maybe",
                                 tokens=42, finish_reason="length")
    """,
    )
    run(limit=1)
    for row in rows(toy):
        assert row["error_type"] == "PARSE_ERROR" and row["error"] == "BenchmarkError: no answer in the reply"
        assert (row["raw_response"], row["tokens"], row["finish_reason"]) == ("I think... maybe", 42, "length")


def test_old_style_full_rows_are_recorded_unchanged_with_segments_filled(toy: Path) -> None:
    use_predict(
        toy,
        """
        def predict(item, params):
            failed = item["input_id"] == 3
            return {
                "input_id": item["input_id"],
                "prediction": None if failed else item["x"] % 2,
                "raw_response": "{}",
                "ground_truth": f"gt-{item['label']}",
                "latency": None,
                "error": "bad item" if failed else None,
                "error_type": "INVALID_VALUE" if failed else None,
                "extra": "kept",
            }
    """,
    )
    run()
    by_item = {item["input_id"]: item for item in items()}
    for row in rows(toy):
        assert row["ground_truth"] == f"gt-{by_item[row['input_id']]['label']}", "predict's own value kept"
        assert row["latency"] is None and row["extra"] == "kept" and row.get("traceback") is None
        assert row["difficulty"] == by_item[row["input_id"]]["difficulty"], "missing segment filled"
        assert (row["error"], row["error_type"]) == (
            ("bad item", "INVALID_VALUE") if row["input_id"] == 3 else (None, None)
        )


VALUES_PREDICT = """
    import math

    import numpy as np

    class Model:
        pass

    VALUES = {
        0: float("nan"),
        1: {1, 2, 3},
        2: Model(),
        3: [1.0, float("inf")],
        4: np.int64(1),
        5: (1, "a"),
        6: np.array([0.5, 0.25]),
    }

    def predict(item, params):
        prediction = VALUES.get(item["input_id"], 1)
        return {"prediction": prediction, "raw_response": "raw", "probability": math.nan, "scores": np.ones(2)}
"""


def test_values_json_cannot_hold_become_invalid_value_errors(toy: Path) -> None:
    use_predict(toy, VALUES_PREDICT)
    run(limit=8)
    recorded = {row["input_id"]: row for row in rows(toy) if row["params_model_name"] == "parity"}
    for input_id, shown in ((0, "nan"), (1, "{1, 2, 3}"), (2, "<toy_bench.predict.Model object"), (3, "inf")):
        row = recorded[input_id]
        assert row["error_type"] == "INVALID_VALUE", f"{shown} must not be counted as an answer"
        assert row["prediction"] is None and shown in row["error"]
        assert row["raw_response"] == "raw", "the raw output is kept"
    assert recorded[1]["error"].startswith(
        "InvalidValue: predict() returned what JSON cannot store: prediction is a set"
    )
    assert recorded[4]["prediction"] == 1 and recorded[4]["error"] is None, "numpy scalar stored as a number"
    assert json.loads(recorded[5]["prediction"]) == [1, "a"], "a tuple is stored as explicit JSON"
    assert json.loads(recorded[6]["prediction"]) == [0.5, 0.25]
    for row in recorded.values():
        assert row["probability"] is None, "NaN outside the prediction is NULL, as SQLite stores it"
        assert json.loads(row["scores"]) == [1.0, 1.0]


def test_a_nan_prediction_is_not_counted_as_a_wrong_answer(toy: Path) -> None:
    from bench_harness._results.metrics import MetricInput, accuracy

    use_predict(
        toy,
        """
        def predict(item, params):
            return {"prediction": float("nan") if item["input_id"] == 0 else item["label"], "raw_response": ""}
    """,
    )
    run()
    recorded = [row for row in rows(toy) if row["params_model_name"] == "parity"]
    metric = MetricInput(recorded, [r["prediction"] for r in recorded], [r["ground_truth"] for r in recorded])
    assert accuracy(metric) == 1.0, "the NaN row is an error, not a wrong answer"


def test_the_envelope_makes_values_json_able(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import toy

    monkeypatch.syspath_prepend(str(toy.HARNESS_SRC))
    from bench_harness._run.envelope import json_row

    row = json_row({"prediction": np.float32(0.5), "raw_response": {"a": np.arange(2)}, "x": float("-inf")})
    assert row == {"prediction": 0.5, "raw_response": '{"a": [0, 1]}', "x": None}
    assert json_row({"prediction": [float("nan")], "raw_response": None})["error_type"] == "INVALID_VALUE"
    assert not math.isnan(json_row({"prediction": 1.0, "error": "e", "raw_response": float("nan")})["prediction"])


def test_a_result_that_cannot_be_pickled_under_processes_is_an_error_row(toy: Path) -> None:
    use_predict(
        toy,
        """
        import threading

        def predict(item, params):
            return {"prediction": item["x"] % 2, "raw_response": "r", "lock": threading.Lock()}
    """,
    )
    summary = run(executor="processes", workers=2)
    recorded = rows(toy)
    assert summary.computed == len(recorded) == 24, "the run completes: every row recorded"
    assert {row["error_type"] for row in recorded} == {"INVALID_VALUE"}
    assert all("lock is a lock" in row["error"] for row in recorded)
    assert all("<unlocked _thread.lock object" in row["raw_response"] or row["raw_response"] == "r" for row in recorded)


def test_processes_and_threads_record_the_same_envelope_as_serial(toy: Path) -> None:
    stable = ("input_id", "prediction", "raw_response", "ground_truth", "error", "error_type", "difficulty")
    run("serial")
    run("threads", executor="threads", use_cache=False)
    run("processes", executor="processes", use_cache=False)
    tables = [sorted(tuple(row[c] for c in stable) for row in rows(toy, v)) for v in ("serial", "threads", "processes")]
    assert tables[0] == tables[1] == tables[2] and len(tables[0]) == 24


def set_segmentations(root: Path, names: list[str]) -> None:
    toml = root / "benchmark.toml"
    toml.write_text(re.sub(r"(?m)^segmentations = .*$", f"segmentations = {json.dumps(names)}", toml.read_text()))


def test_a_segmentation_added_later_reaches_cached_rows(toy: Path) -> None:
    import toy as toy_project

    data = [{**item, "source": f"s{item['input_id'] % 2}"} for item in toy_project.sample_items()]
    toy_project.write_project(toy, items=data)
    set_segmentations(toy, [])
    first = run("t1")
    assert "source" not in rows(toy)[0] and "difficulty" not in rows(toy)[0]
    set_segmentations(toy, ["difficulty", "source"])  # as `copier update -d segmentations=...` does
    again = run("t2")
    assert (again.computed, again.cache_hits) == (0, first.computed)
    by_item = {item["input_id"]: item for item in data}
    for row in rows(toy, "t2"):
        assert row["cache"], "a cache hit"
        assert row["source"] == by_item[row["input_id"]]["source"]
        assert row["difficulty"] == by_item[row["input_id"]]["difficulty"]


def test_cache_hits_keep_segment_values_predict_returned(toy: Path) -> None:
    use_predict(
        toy,
        """
        def predict(item, params):
            return {"prediction": 0, "raw_response": "", "difficulty": "from-predict"}
    """,
    )
    run("t1")
    again = run("t2")
    assert again.cache_hits == 24
    assert {row["difficulty"] for row in rows(toy, "t2")} == {"from-predict"}


def test_a_segmentation_no_item_has_leaves_cache_hits_as_they_are(toy: Path) -> None:
    set_segmentations(toy, [])
    run("t1")
    set_segmentations(toy, ["missing_field"])
    assert run("t2").cache_hits == 24
    assert {row.get("missing_field") for row in rows(toy, "t2")} == {None}


def test_minilm_files_are_checked_against_the_published_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toy

    monkeypatch.syspath_prepend(str(toy.HARNESS_SRC))
    from bench_harness import BenchmarkError
    from bench_harness._clients import minilm

    for name in minilm.SHA256:
        (tmp_path / name).write_text("not the model")
    with pytest.raises(BenchmarkError, match="sha256 .* not the published model's .* uv sync --reinstall-package"):
        minilm.verify_files(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    good = {name: minilm.sha256_of(tmp_path / name) for name in ("model.safetensors", "config.json")}
    minilm.verify_files(tmp_path, good)  # the right bytes pass
    with pytest.raises(BenchmarkError, match="missing"):
        minilm.verify_files(tmp_path, {**good, "tokenizer.json": "0" * 64})


def test_retry_after_from_an_exception_or_a_returned_row_is_honoured_not_recorded(toy: Path) -> None:
    use_predict(
        toy,
        """
        from bench_harness import RATE_LIMIT, BenchmarkError

        CALLS = {}

        def predict(item, params):
            key = (item["input_id"], params.model_name)
            CALLS[key] = CALLS.get(key, 0) + 1
            if CALLS[key] == 1:
                raise BenchmarkError("slow down", RATE_LIMIT, retry_after=0.0)
            if CALLS[key] == 2:
                return {"input_id": item["input_id"], "error": "429", "error_type": RATE_LIMIT, "retry_after": 0.0}
            return {"prediction": 1, "raw_response": "ok"}
        """,
    )
    summary = run(limit=2)
    recorded = rows(toy)
    assert summary.errors == 0 and {row["retry_count"] for row in recorded} == {2}
    assert "retry_after" not in recorded[0]
