"""Kind manifests (kinds/<kind>/kind.yml) and the metric registry drive copier.yml and the kind-dependent files.

Renders without tasks (about 2 s each). The strongest check is a regression one: every kind renders the same
pyproject.toml, benchmark.toml and params.py as at commit a24cac9 (before manifests), but for the keys this
change adds on purpose.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE, render

BEFORE_MANIFESTS = "a24cac9"
KINDS = sorted(path.parent.name for path in (TEMPLATE / "kinds").glob("*/kind.yml"))
# What this change adds to every render on purpose.
ADDED_DEPENDENCIES = {"pyyaml>=6"}
ADDED_KEYS = {("data", "ground_truth"), ("analysis", "correct"), ("analysis", "quality")}
# Added and changed since, on purpose (issues 14 and 16: task timeouts, adaptive concurrency, workers by executor).
ADDED_KEYS |= {("run", "task_timeout_seconds"), ("run", "adaptive_concurrency")}
CHANGED_KEYS = {("run", "workers")}


def has_commit(ref: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", ref], cwd=TEMPLATE, capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each kind rendered by the template as it was before manifests (copier clones that commit)."""
    if not has_commit(BEFORE_MANIFESTS):
        pytest.skip(f"commit {BEFORE_MANIFESTS} is not in this clone")
    root = tmp_path_factory.mktemp("before")
    return {kind: render(root / kind, {"kind": kind}, tasks=False, vcs_ref=BEFORE_MANIFESTS) for kind in KINDS}


@pytest.fixture(scope="module")
def after(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("after")
    return {kind: render(root / kind, {"kind": kind}, tasks=False) for kind in KINDS}


def toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_pyproject_is_unchanged_but_for_the_registry_dependency(kind: str, before: dict, after: dict) -> None:
    old, new = toml(before[kind] / "pyproject.toml"), toml(after[kind] / "pyproject.toml")
    added = set(new["project"]["dependencies"]) - set(old["project"]["dependencies"])
    assert added == ADDED_DEPENDENCIES
    new["project"]["dependencies"] = [d for d in new["project"]["dependencies"] if d not in ADDED_DEPENDENCIES]
    assert new == old


@pytest.mark.parametrize("kind", KINDS)
def test_benchmark_toml_is_unchanged_but_for_the_kind_scoring(kind: str, before: dict, after: dict) -> None:
    old, new = toml(before[kind] / "benchmark.toml"), toml(after[kind] / "benchmark.toml")
    manifest = yaml.safe_load((TEMPLATE / "kinds" / kind / "kind.yml").read_text())
    assert new["analysis"]["correct"] == manifest["scoring"]["correct"]
    assert new["analysis"]["quality"] == manifest["scoring"]["quality"]
    assert new["data"].get("ground_truth") == manifest["data"].get("ground_truth")
    for table, key in ADDED_KEYS:
        new[table].pop(key, None)
    for table, key in CHANGED_KEYS:
        new[table].pop(key, None), old[table].pop(key, None)
    assert new == old


@pytest.mark.parametrize("kind", KINDS)
def test_params_and_kind_files_are_unchanged(kind: str, before: dict, after: dict) -> None:
    package = Path("src") / "my_benchmark"
    for name in (package / "params.py", "data/sample.jsonl", ".gitignore", "EXPERIMENT_PLAN.md"):
        assert (after[kind] / name).read_text() == (before[kind] / name).read_text(), name
    old_files = {p.relative_to(before[kind]) for p in before[kind].rglob("*") if ".git" not in p.parts}
    new_files = {p.relative_to(after[kind]) for p in after[kind].rglob("*") if ".git" not in p.parts}
    added_harness_files = {p for p in new_files - old_files if p.parts[:2] == ("src", "bench_harness")}
    assert new_files - added_harness_files == old_files


@pytest.mark.parametrize("kind", KINDS)
def test_the_manifest_stays_out_of_the_answers_file(kind: str, after: dict) -> None:
    answers = yaml.safe_load((after[kind] / ".copier-answers.yml").read_text())
    assert answers["kind"] == kind and "kind_manifest" not in answers


def test_an_unknown_kind_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="parity"):
        render(tmp_path / "bad", {"kind": "parity"}, tasks=False, pretend=True)
    with pytest.raises(Exception, match="kind"):
        render(tmp_path / "bad2", {"kind": "../llm"}, tasks=False, pretend=True)


def test_the_metrics_question_offers_exactly_the_registry(tmp_path: Path) -> None:
    """Any registry metric a kind allows is accepted; a companion or unknown name is refused."""
    render(tmp_path / "ok", {"kind": "llm", "metrics": ["total_tokens", "throughput"]}, tasks=False, pretend=True)
    for refused in ("accuracy_strict", "no_such_metric"):
        with pytest.raises(Exception, match=refused):
            render(tmp_path / refused, {"kind": "llm", "metrics": [refused]}, tasks=False, pretend=True)


def test_copier_update_from_before_manifests_recomputes_the_manifest(tmp_path: Path) -> None:
    """A project rendered before manifests updates to this template; the computed answer is never stored."""
    from copier import run_update

    if not has_commit(BEFORE_MANIFESTS):
        pytest.skip(f"commit {BEFORE_MANIFESTS} is not in this clone")
    project = render(tmp_path / "p", {"kind": "embeddings"}, tasks=False, vcs_ref=BEFORE_MANIFESTS)
    git = ["git", "-c", "user.email=t@localhost", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "rendered", "--no-verify"], cwd=project, check=True)
    run_update(str(project), defaults=True, overwrite=True, unsafe=True, skip_tasks=True, quiet=True, vcs_ref="HEAD")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert "kind_manifest" not in answers and answers["kind"] == "embeddings"
    config = toml(project / "benchmark.toml")
    assert config["analysis"]["correct"] == "top1_relevant" and config["data"]["ground_truth"] == "relevant"
    conflicts = [p for p in project.rglob("*.rej")]
    assert conflicts == []
