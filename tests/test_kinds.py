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
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE, make, project_env, render, run, tool

KINDS = ("classification", "regression", "llm", "embeddings", "throughput")
RUN_KINDS = ("regression", "llm", "embeddings", "throughput")
SECRET = "sk-Q7fV2xR9mK4pL8wZ3nT6bY1cH5jD0gSa"  # random-looking: no 8 characters of it occur by chance


# The throughput project is rendered at maximum versioning: test_versioning's kill matrix uses the same
# answers, so both share one render (a kind's checks do not depend on the versioning level).
ANSWERS = {kind: {"kind": kind} for kind in KINDS} | {"throughput": {"kind": "throughput", "versioning": "maximum"}}


def project_of(rendered, kind: str) -> Path:
    return rendered(f"kind-{kind}", ANSWERS[kind])


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
    if kind == "regression":  # the tag heads with the kind's quality measure (mae), not the first chosen metric
        assert "| mae=" in done.stdout.split("tagged ")[1].splitlines()[0], done.stdout[-2000:]
    kind_files = [str(p.relative_to(project)) for p in (project / "src" / "my_benchmark").glob("*.py")]
    kind_files += [str(p.relative_to(project)) for p in (project / "tests").glob("test_*_kind.py")]
    lint = run(project, tool(project, "ruff"), "check", *kind_files, check=False)
    assert lint.returncode == 0, lint.stdout[-3000:]


# -- the LLM key never reaches an output -------------------------------------------------------------


# Faults whose error bodies echo the key in every form (whole, JSON-escaped, cased, URL-encoded, cut near
# 300 characters): the retried ones (429, 503) and the ones that become error rows (400, 422).
ECHOING_FAULTS = ("rate_limit", "server_error", "status_400", "rate_limit_date", "status_422", "status_400")


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
    return module.LocalLLMServer(answers, faults=ECHOING_FAULTS, expected_key=SECRET, echo_key=True)


def key_forms(secret: str, window: int = 8) -> list[str]:
    """Every run of `window` key characters as text can hold it: as is (any case), JSON `\\uXXXX`-escaped,
    URL-encoded. Written here, independently of the harness's redaction (bench_harness/_core/secrets.py)."""
    forms = set()
    for start in range(len(secret) - window + 1):
        part = secret[start : start + window]
        forms |= {part, "".join(f"\\u{ord(c):04x}" for c in part), urllib.parse.quote(part, safe="")}
    return sorted(form.lower() for form in forms)


KEY_FORMS = key_forms(SECRET)


def leaks(content: bytes | str) -> list[str]:
    """The forms of the key found in `content` (bytes read as Latin-1: any byte is a character)."""
    text = (content.decode("latin-1") if isinstance(content, bytes) else content).lower()
    return [form for form in KEY_FORMS if form in text]


def parquet_text(path: Path) -> str:
    """A Parquet file's values as text (its pages are compressed: the file's bytes would hide a key)."""
    import duckdb

    con = duckdb.connect()
    try:
        return repr(con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall())
    finally:
        con.close()


def files_leaking(root: Path) -> dict[str, list[str]]:
    """Every file under `root` (the project and its DVC remote beside it) that holds a form of the key.

    Git's objects are compressed: they are read through git itself (see git_objects); Parquet files
    through DuckDB. Everything else as its bytes: the database and its DVC cache and remote copies
    (SQLite pages, free pages included), CSV exports, reports, logs, git's index, refs and hooks.
    """
    found = {}
    for path in root.rglob("*"):
        if ".venv" in path.parts or not path.is_file() or path.is_symlink():
            continue
        if ".git" in path.parts and "objects" in path.parts:
            continue
        content = parquet_text(path) if path.suffix == ".parquet" else path.read_bytes()
        if hits := leaks(content):
            found[str(path.relative_to(root))] = hits
    return found


def git_objects(project: Path) -> bytes:
    """`git log -p --all` and the content of EVERY object of the repository (`git cat-file`), decompressed."""
    history = subprocess.run(["git", "log", "-p", "--all"], cwd=project, env=project_env(), capture_output=True)
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=project, env=project_env(), capture_output=True
    )
    assert history.returncode == 0 and objects.returncode == 0 and objects.stdout
    return history.stdout + objects.stdout


@pytest.mark.slow
def test_the_api_key_reaches_the_endpoint_and_no_output(rendered) -> None:
    """Issue 14 row 3: a key the endpoint echoes in every form reaches no output, whole or in part.

    Greps the database and its DVC cache and remote copies, the exports (CSV, Parquet), the reports
    (RESULTS.md, report.html), every command's stdout and stderr, `git log -p --all` and every git object.
    """
    assert leaks(f"error: invalid key {SECRET[5:14].upper()}"), "the checker finds a partial key"
    project = project_of(rendered, "llm")
    outputs = []
    with fake_endpoint() as server:
        env = {"LLM_BASE_URL": server.base_url, "LLM_API_KEY": SECRET, "OPENAI_API_KEY": SECRET}
        args = "--no-cache --executor threads --workers 4 --allow-dirty"
        outputs.append(make(project, "experiment", ARGS=args, **env))
        assert server.authorized >= 32 * 4, "every request carried the key"
        assert not server.faults, "every echoing fault was served"
    assert " 3 errors" in outputs[0].stdout and " 0 retries" not in outputs[0].stdout, outputs[0].stdout[-2000:]
    cfg = config_of(project)
    with sqlite3.connect(project / cfg["database"]["path"]) as con:
        errors = [row[0] for row in con.execute("SELECT error FROM predictions WHERE error IS NOT NULL")]
    con.close()
    assert len(errors) >= 3 and all("***" in error for error in errors), "the echoed bodies were stored, redacted"
    for target in ("metrics", "validate", "report", "export", "push"):
        outputs.append(make(project, target, check=False, **env))
    version = outputs[0].stdout.split("tagged ")[1].split(":")[0]
    written = [
        project / "exports" / "predictions.csv",
        project / "exports" / "predictions.parquet",
        project / "reports" / version / "RESULTS.md",
        project / "reports" / version / "report.html",
        project / cfg["database"]["path"],
    ]
    assert all(path.is_file() for path in written), [str(p) for p in written if not p.is_file()]
    dvc_copies = [p for p in project.parent.rglob("files/md5/*/*") if ".venv" not in p.parts]
    assert len({p.parts[len(project.parent.parts)] for p in dvc_copies}) >= 2, "the DVC cache and remote hold copies"
    for done in outputs:
        assert not leaks(done.stdout) and not leaks(done.stderr), (done.args, leaks(done.stdout + done.stderr))
    assert not leaks(git_objects(project))
    assert files_leaking(project.parent) == {}
