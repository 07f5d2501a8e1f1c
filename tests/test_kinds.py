"""Every benchmark kind renders, and each generated repo's `make test` and `make experiment` pass offline
with metrics that make sense for its data; an LLM API key never reaches any output.

One rendered project per kind (session `rendered` fixture); classification is the default kind
and runs end to end in test_render_matrix.py, so here it is only rendered statically.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE, make, project_env, render, run

KINDS = ("classification", "regression", "llm", "embeddings", "throughput")
RUN_KINDS = ("regression", "llm", "embeddings", "throughput")
SECRET = "sk-kind-test-3f9c1e7a-never-store-me"


def project_of(rendered, kind: str) -> Path:
    return rendered(f"kind-{kind}", {"kind": kind})


def config_of(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "benchmark.toml").read_text())


def latest(project: Path, table_key: str) -> list[dict[str, Any]]:
    """Rows of the latest experiment version of the predictions or metrics table."""
    cfg = config_of(project)
    table = cfg["database"][table_key]
    with sqlite3.connect(project / cfg["database"]["path"]) as con:
        con.row_factory = sqlite3.Row
        version = con.execute(f'SELECT experiment_version FROM "{table}" ORDER BY rowid DESC LIMIT 1').fetchone()[0]
        rows = con.execute(f'SELECT * FROM "{table}" WHERE experiment_version = ?', (version,)).fetchall()
    return [dict(r) for r in rows]


def by(rows: list[dict[str, Any]], param: str) -> dict[Any, list[dict[str, Any]]]:
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row[f"params_{param}"], []).append(row)
    return grouped


# -- every kind renders ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_its_own_sources(rendered_static, kind: str) -> None:
    project = rendered_static({"kind": kind})
    package = project / "src" / "my_benchmark"
    assert config_of(project)["project"]["kind"] == kind
    for name in ("predict.py", "data.py", "scoring.py"):  # verbatim: no extra blank line (ruff format-clean)
        assert (package / name).read_text() == (TEMPLATE / "kinds" / kind / name).read_text()
    if has_kind_test := kind in ("llm", "throughput", "embeddings"):
        kind_test = (project / "tests" / f"test_{kind}_kind.py").read_text()
        assert kind_test == (TEMPLATE / "kinds" / kind / "test_kind.py").read_text()
    assert (project / "data" / "sample.jsonl").stat().st_size > 0
    defaults = yaml.safe_load((TEMPLATE / "kinds" / kind / "kind.yml").read_text())["metrics"]["default"]
    assert set(config_of(project)["analysis"]["metrics"]) == set(defaults)
    assert not (package / "local_server.py").exists(), "the stand-in servers are template-owned (bench_harness)"
    assert (project / "tests" / f"test_{kind}_kind.py").is_file() == has_kind_test
    assert (project / "pricing.toml").is_file() == (kind == "llm")
    assert f"## This benchmark's kind: {kind}" in (project / "README.md").read_text()


def test_a_metric_of_another_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not apply to a llm benchmark"):
        render(tmp_path / "bad", {"kind": "llm", "metrics": ["mae"]}, tasks=False)


# -- each kind runs offline with sensible metrics ----------------------------------------------------


def check_regression(metrics: list[dict], predictions: list[dict]) -> None:
    models = {name: rows[0] for name, rows in by(metrics, "model_name").items()}
    assert models["ridge"]["r2"] > 0.3 and models["random_forest"]["r2"] > 0.2, models
    assert abs(models["mean_baseline"]["r2"]) < 0.05, "the mean baseline explains nothing"
    assert models["ridge"]["mae"] < 0.85 * models["mean_baseline"]["mae"]
    assert models["ridge"]["rmse"] >= models["ridge"]["mae"]
    assert models["random_forest"]["prediction_std"] > 0 and models["ridge"]["prediction_std"] is None


def check_llm(metrics: list[dict], predictions: list[dict]) -> None:
    accuracy = {name: min(r["accuracy"] for r in rows) for name, rows in by(metrics, "model_name").items()}
    assert accuracy["local-large"] > accuracy["local-small"] > 0.5, accuracy
    assert all(r["total_cost"] > 0 and r["prompt_tokens"] > 0 and r["cost_per_correct"] > 0 for r in metrics)
    tokens = {name: rows[0]["completion_tokens"] for name, rows in by(metrics, "prompt_template").items()}
    assert tokens["json"] > tokens["direct"], "the JSON template's answers are longer"
    assert {r["finish_reason"] for r in predictions} == {"stop"}
    assert all(r["pricing_digest"] and r["price_input_per_mtok"] is not None for r in predictions)
    assert all(r["prompt"].startswith("Question: ") for r in predictions)


def check_embeddings(metrics: list[dict], predictions: list[dict]) -> None:
    models = {name: rows[0] for name, rows in by(metrics, "model_name").items()}
    assert models["minilm"]["recall_at_1"] > models["hashing"]["recall_at_1"] + 0.15, models
    assert models["minilm"]["mrr"] > 0.9 and models["hashing"]["mrr"] > 0.3
    minilm = [r for r in predictions if r["params_model_name"] == "minilm"]
    assert {r["embedding_dim"] for r in minilm} == {384}
    assert all(abs(r["embedding_norm"]) > 0 and len(r["embedding_hash"]) == 16 for r in minilm)


def check_throughput(metrics: list[dict], predictions: list[dict]) -> None:
    for row in metrics:
        assert row["requests_per_second"] > 0 and row["request_error_rate"] == 0
        assert 0 < row["request_latency_p50"] <= row["request_latency_p95"] <= row["request_latency_p99"]
        assert row["cpu_percent"] > 0 and row["memory_percent"] > 0
    for row in predictions:
        assert len(json.loads(row["request_latencies"])) == row["requests_total"] == row["requests_ok"]
        assert row["prediction"] == row["ground_truth"], "the service answered correctly"


CHECKS = {
    "regression": check_regression,
    "llm": check_llm,
    "embeddings": check_embeddings,
    "throughput": check_throughput,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", RUN_KINDS)
def test_generated_tests_and_experiment_pass_offline_with_sensible_metrics(rendered, kind: str) -> None:
    project = project_of(rendered, kind)
    tested = make(project, "test")
    assert " passed" in tested.stdout and " failed" not in tested.stdout
    done = make(project, "experiment")
    assert " 0 errors" in done.stdout, done.stdout[-3000:]
    metrics, predictions = latest(project, "metrics_table"), latest(project, "predictions_table")
    assert len(metrics) >= 2 and all(r["n_failed"] == 0 for r in metrics)
    CHECKS[kind](metrics, predictions)
    kind_files = [str(p.relative_to(project)) for p in (project / "src" / "my_benchmark").glob("*.py")]
    kind_files += [str(p.relative_to(project)) for p in (project / "tests").glob("test_*_kind.py")]
    lint = run(project, "uv", "run", "--quiet", "ruff", "check", *kind_files, check=False)
    assert lint.returncode == 0, lint.stdout[-3000:]


# -- the LLM key never reaches an output -------------------------------------------------------------


def fake_endpoint() -> Any:
    """The harness's stand-in (bench_harness/_clients/llm_server.py) as a fake endpoint that wants SECRET."""
    import sys

    from toy import HARNESS_SRC

    sys.path.insert(0, str(HARNESS_SRC))
    try:
        module = importlib.import_module("bench_harness._clients.llm_server")
    finally:
        sys.path.remove(str(HARNESS_SRC))
    lines = (TEMPLATE / "kinds" / "llm" / "sample.jsonl").read_text().splitlines()
    answers = {item["question"]: item["answer"] for item in map(json.loads, lines)}
    return module.LocalLLMServer(answers, faults=("rate_limit", "server_error"), expected_key=SECRET, echo_key=True)


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if ".venv" in path.parts or not path.is_file() or path.is_symlink():
            continue
        if needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


@pytest.mark.slow
def test_the_api_key_reaches_the_endpoint_and_no_output(rendered) -> None:
    project = project_of(rendered, "llm")
    outputs = []
    with fake_endpoint() as server:
        env = {"LLM_BASE_URL": server.base_url, "LLM_API_KEY": SECRET, "OPENAI_API_KEY": SECRET}
        args = "--no-cache --executor threads --workers 4 --allow-dirty"
        outputs.append(make(project, "experiment", ARGS=args, **env))
        assert server.authorized >= 32 * 4, "every request carried the key"
    assert " 0 errors" in outputs[0].stdout and " 0 retries" not in outputs[0].stdout, outputs[0].stdout[-2000:]
    for target in ("metrics", "validate", "report", "export"):
        outputs.append(make(project, target, check=False, **env))
    history = subprocess.run(
        ["git", "log", "--all", "-p"], cwd=project, env=project_env(), capture_output=True, text=True
    )
    for done in (*outputs, history):
        assert SECRET not in done.stdout and SECRET not in done.stderr
    assert files_holding(project.parent, SECRET.encode()) == []
