"""Kind manifests (kinds/<kind>/kind.yml) and the metric registry drive copier.yml and the kind-dependent files.

Renders without tasks (about 2 s each). The strongest check is a regression one: every kind renders the same
pyproject.toml, benchmark.toml and params.py VALUES as at commit a24cac9 (before manifests), but for the
differences listed below, each added on purpose by a change merged since (compared as values, not text, so a
reformatting of the template does not count as a difference).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE, RenderCache, render

BEFORE_MANIFESTS = "a24cac9"
KINDS = sorted(path.parent.name for path in (TEMPLATE / "kinds").glob("*/kind.yml"))
PACKAGE = Path("src") / "my_benchmark"

# -- the intended differences since a24cac9, each with the change that made it ----------------------------
# registry: the metric registry is YAML; a kind's manifest adds its own packages (llm: the OpenAI SDK, clients).
ADDED_DEPENDENCIES = {"pyyaml>=6"}
ADDED_KEYS = {("data", "ground_truth"), ("analysis", "correct"), ("analysis", "quality")}
# Added and changed since, on purpose (issues 14 and 16: task timeouts, adaptive concurrency, workers by executor).
ADDED_KEYS |= {("run", "task_timeout_seconds"), ("run", "adaptive_concurrency")}
CHANGED_KEYS = {("run", "workers")}
# weight (issue 17): no pyarrow (Parquet through DuckDB), plain xetrack (diskcache unused), pandas below 3,
# an honest Python range (numpy<2 has no wheels past 3.12); a kind's own extras (embeddings:
# sentence-transformers) and [tool.uv] settings come from its manifest.
REPLACED_DEPENDENCIES = {"xetrack[cache]==0.7.0": "xetrack==0.7.0", "pandas>=2.0": "pandas>=2.0,<3"}
REMOVED_DEPENDENCY_PREFIXES = ("pyarrow",)
REQUIRES_PYTHON = ">=3.11,<3.13"
# browse/notebook: `make browse` (Datasette) and `make notebook` (marimo) are optional extras.
ADDED_EXTRAS = {"browse", "notebook"}
# envelope: bench_harness is an isort section of its own; answers: params.py may hold long values (E501).
ADDED_RUFF_LINT_TABLES = {"isort", "per-file-ignores"}
# versioning/report: reports/ and reproductions/ are outputs, data/ is DVC's (the parquet line is subsumed).
ADDED_IGNORES = {"reports/", "reproductions/", "/data"}
REMOVED_IGNORES = {"reports/**/*.parquet"}
# ci: the workflow; notebook: the marimo notebook; pyramid: the harness's own tests left the generated
# project (they run in-process in the template's tests), a smoke test stays.
ADDED_FILES = {
    Path(".github/workflows/benchmark.yml"),
    Path("notebooks/analysis.py"),
    Path("tests/test_harness_smoke.py"),
}
REMOVED_FILES = {Path("tests/test_harness_run.py"), Path("tests/test_harness_versioning.py")}
# clients: the llm and throughput kinds' local stand-in servers moved into the harness (bench_harness._clients).
REMOVED_KIND_FILES = {"llm": {PACKAGE / "local_server.py"}, "throughput": {PACKAGE / "local_server.py"}}
# answers: answer values are Markdown-escaped in EXPERIMENT_PLAN.md; compare: the plan gained a power section.
POWER_SECTION = re.compile(r"## Statistical power:.*?<!-- power:end -->", re.DOTALL)
MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")


def has_commit(ref: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", ref], cwd=TEMPLATE, capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def before(render_cache: RenderCache) -> dict[str, Path]:
    """Each kind rendered by the template as it was before manifests (copier clones that commit); once
    per session, shared by the xdist workers: READ them (a test that changes one copies it)."""
    if not has_commit(BEFORE_MANIFESTS):
        pytest.skip(f"commit {BEFORE_MANIFESTS} is not in this clone")

    def render_before(kind: str) -> Path:
        make = lambda folder: render(folder / "project", {"kind": kind}, tasks=False, vcs_ref=BEFORE_MANIFESTS)  # noqa: E731
        return render_cache.build(f"before-manifests-{kind}", make)

    return {kind: render_before(kind) for kind in KINDS}


@pytest.fixture(scope="session")
def after(rendered_static) -> dict[str, Path]:
    """Each kind rendered by the working tree: the session's shared files-only renders."""
    return {kind: rendered_static({"kind": kind}) for kind in KINDS}


def toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow  # renders a release of the template (git clone of an older commit): the full tier
def test_pyproject_is_unchanged_but_for_the_registry_dependency(kind: str, before: dict, after: dict) -> None:
    old, new = toml(before[kind] / "pyproject.toml"), toml(after[kind] / "pyproject.toml")
    manifest = yaml.safe_load((TEMPLATE / "kinds" / kind / "kind.yml").read_text())
    intended = ADDED_DEPENDENCIES | set(manifest.get("dependencies", {}).get("packages", []))
    old["project"]["dependencies"] = [
        REPLACED_DEPENDENCIES.get(d, d)
        for d in old["project"]["dependencies"]
        if not d.startswith(REMOVED_DEPENDENCY_PREFIXES)
    ]
    added = set(new["project"]["dependencies"]) - set(old["project"]["dependencies"])
    assert added == intended - set(old["project"]["dependencies"])
    new["project"]["dependencies"] = [d for d in new["project"]["dependencies"] if d not in added]
    assert new["project"]["requires-python"] == REQUIRES_PYTHON
    new["project"]["requires-python"] = old["project"]["requires-python"]
    extras = new["project"]["optional-dependencies"]
    assert ADDED_EXTRAS <= set(extras)
    for extra in ADDED_EXTRAS - set(old["project"].get("optional-dependencies", {})):
        extras.pop(extra)
    for extra in manifest.get("dependencies", {}).get("extras", {}):
        extras.pop(extra)
    if "uv" in manifest:  # the kind's [tool.uv] settings, from its manifest
        new["tool"].pop("uv", None)
        old["tool"].pop("uv", None)
    lint = new["tool"]["ruff"]["lint"]
    assert lint["isort"]["sections"] == {"harness": ["bench_harness"]}
    assert lint["isort"]["known-first-party"] == ["my_benchmark"]
    for table in ADDED_RUFF_LINT_TABLES:
        lint.pop(table)
    assert new == old


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow  # renders a release of the template (git clone of an older commit): the full tier
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
@pytest.mark.slow  # renders a release of the template (git clone of an older commit): the full tier
def test_params_and_kind_files_are_unchanged(kind: str, before: dict, after: dict) -> None:
    assert params_values(after[kind] / PACKAGE / "params.py") == params_values(before[kind] / PACKAGE / "params.py")
    assert jsonl(after[kind] / "data/sample.jsonl") == jsonl(before[kind] / "data/sample.jsonl")
    old_ignores, new_ignores = ignore_lines(before[kind] / ".gitignore"), ignore_lines(after[kind] / ".gitignore")
    assert (new_ignores - old_ignores, old_ignores - new_ignores) == (ADDED_IGNORES, REMOVED_IGNORES)
    assert plan_text(after[kind] / "EXPERIMENT_PLAN.md") == plan_text(before[kind] / "EXPERIMENT_PLAN.md")
    old_files, new_files = project_files(before[kind]), project_files(after[kind])
    added_harness_files = {p for p in new_files - old_files if p.parts[:2] == ("src", "bench_harness")}
    removed = REMOVED_FILES | REMOVED_KIND_FILES.get(kind, set())
    assert (new_files - added_harness_files) - old_files == ADDED_FILES
    assert old_files - new_files == removed


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def params_values(path: Path) -> dict[str, Any]:
    """What params.py means: its fields with types and defaults, its grid, and how it rounds floats."""
    module = load_module(path, f"_params_{abs(hash(path))}")
    fields = [(f.name, str(f.type), f.default) for f in dataclasses.fields(module.Params)]
    floats = [f.name for f in dataclasses.fields(module.Params) if str(f.type) == "float"]
    rounded = {name: getattr(module.Params(**{name: 0.1 + 0.2 + 1e-9}), name) for name in floats}
    grid = [dataclasses.astuple(p) for p in module.grid()]
    return {"fields": fields, "grid": grid, "GRID": module.GRID, "rounded": rounded}


def jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ignore_lines(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def plan_text(path: Path) -> str:
    """The plan without the power section and without Markdown escapes, blank-line runs collapsed."""
    text = MARKDOWN_ESCAPE.sub(r"\1", POWER_SECTION.sub("", path.read_text()))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def project_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


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


@pytest.mark.slow  # renders a release of the template (git clone of an older commit): the full tier
def test_copier_update_from_before_manifests_recomputes_the_manifest(before: dict, tmp_path: Path) -> None:
    """A project rendered before manifests updates to this template; the computed answer is never stored."""
    from copier import run_update

    project = tmp_path / "p"
    shutil.copytree(before["embeddings"], project, symlinks=True)
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
