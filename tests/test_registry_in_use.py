"""The registry in use, in-process on the toy benchmark: the metrics table (Python) and the report (SQL) judge
rows by the kind's correctness rule (benchmark.toml [analysis] correct) and count the same correct rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest


def full_row(item: dict[str, Any], params: Any, ranked: bool) -> dict[str, Any]:
    """An old-style full row (works with or without the harness's envelope): a class, or a ranking of both."""
    value = (item["x"] + params.offset) % 2 if params.model_name == "parity" else 0
    prediction = [value, 1 - value] if ranked else str(value)  # "1" against the stored int 1: still equal
    truth = [item["label"]] if ranked else item["label"]
    return {"input_id": item["input_id"], "prediction": prediction, "raw_response": str(value), "latency": 0.001,
            "ground_truth": truth, "error": None, "error_type": None, "difficulty": item.get("difficulty")}  # fmt: skip


@pytest.mark.parametrize("rule", ["equal", "top1_relevant"])
def test_metrics_table_and_report_count_the_same_correct_rows(toy: Path, rule: str) -> None:
    from bench_harness._core.config import load_config
    from bench_harness._report.model import build
    from bench_harness._results import metrics
    from bench_harness._run import runner

    cfg = dataclasses.replace(load_config(), correct=rule)
    options = runner.RunOptions(experiment_version="r1", show_progress=False, executor="serial")
    summary = runner.run(cfg, options, predict_fn=lambda item, params: full_row(item, params, rule != "equal"))
    logged = {row["config_id"]: row for row in metrics.log_metrics(cfg, summary)}
    report = build(cfg, cfg.db_path, "r1")
    accuracies = sorted(c.accuracy for c in report.configs)
    assert len(accuracies) >= 2 and accuracies[-1] == 1.0 and 0 < accuracies[0] < 1
    for c in report.configs:
        assert c.accuracy == pytest.approx(logged[c.config_id]["accuracy"])
