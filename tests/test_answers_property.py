"""Issue 13 point 7: every answer set is either refused with a message or renders a project that holds.

hypothesis draws answer sets (parameters with types, defaults and grids, metrics, segmentations, engine,
versioning, data format, names); each is either refused by copier's validators with a message naming the
problem, or rendered (tasks=False) and checked statically: Python compiles and is ruff-clean, TOML and
YAML parse, params.py imports and grid() returns distinct frozen configurations of the declared types.
A few drawn sets (slow) run the generated project's own `make test`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from budget import examples
from conftest import VENV_BIN, make, render
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

# What the classification kind's predict.py runs (copier.yml's KIND_NEEDS), the base of every drawn set.
MODELS = ["logistic_regression", "random_forest", "most_frequent"]
TYPES = {"str": str, "int": int, "float": float, "bool": bool}
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values three times in four: enough answer sets get past the validators to be rendered."""
    return st.one_of(good, good, good, bad)


VALUES = {
    "str": mostly(st.sampled_from(["a", "b", "x y", 'q"uote', "\\", "é😀"]), TEXT),
    "int": mostly(st.integers(-5, 5), st.one_of(st.integers(), TEXT)),
    "float": mostly(st.floats(-10, 10), st.one_of(st.floats(allow_nan=True, allow_infinity=True), TEXT)),
    "bool": mostly(st.booleans(), st.sampled_from(["true", "false", 0, 1])),
}


@st.composite
def extra_param(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(VALUES)))
    param: dict[str, Any] = {
        "name": draw(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)),
        "type": kind,
        "default": draw(VALUES[kind]),
    }
    if kind == "float" and draw(st.booleans()):
        param["digits"] = draw(mostly(st.integers(0, 15), st.sampled_from([-1, 16])))
    if draw(st.booleans()):
        param["values"] = draw(st.lists(VALUES[kind], min_size=draw(mostly(st.just(1), st.just(0))), max_size=3))
    return param


@st.composite
def answer_sets(draw: st.DrawFn) -> dict[str, Any]:
    models = draw(st.lists(mostly(st.sampled_from(MODELS), st.just("gpt")), min_size=1, max_size=2, unique=True))
    kind_params = [
        {"name": "model_name", "type": "str", "default": models[0], "values": models},
        {"name": "regularization", "type": "float", "default": 1.0, "values": draw(st.sampled_from([[1.0], [0.5, 2]]))},
        {"name": "seed", "type": "int", "default": draw(mostly(st.sampled_from([0, 7]), st.just(-1)))},
    ]
    extras = draw(st.lists(extra_param(), max_size=2, unique_by=lambda p: p["name"]))
    data_format = draw(st.sampled_from(["jsonl", "csv", "parquet"]))
    return {
        "project_name": draw(st.sampled_from(["my-benchmark", "Bench 2", "x.y_z"])),
        "description": draw(TEXT),
        "author_name": draw(st.sampled_from(["Ann", "O'Brien, Jr.", 'Quote"d'])),
        "params": kind_params + extras,
        "metrics": draw(
            st.lists(
                st.sampled_from(["accuracy", "f1_macro", "latency_p50", "error_rate"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        ),
        "custom_segmentations": draw(
            st.lists(mostly(st.sampled_from(["age_bucket", "site"]), st.just("error")), max_size=2, unique=True)
        ),
        "engine": draw(st.sampled_from(["sqlite", "duckdb"])),
        "versioning": draw(st.sampled_from(["minimal", "standard", "maximum"])),
        "data_format": data_format,
        "data_path": f"data/sample.{data_format}",
    }


def refusal_or_project(destination: Path, answers: dict[str, Any]) -> str | Path:
    """The validator's message, or the rendered project."""
    try:
        return render(destination, answers, tasks=False, from_snapshot=True)
    except ValueError as refused:
        return str(refused)


def check_statically(project: Path, answers: dict[str, Any]) -> None:
    tomllib.loads((project / "pyproject.toml").read_text())
    tomllib.loads((project / "benchmark.toml").read_text())
    yaml.safe_load((project / ".copier-answers.yml").read_text())
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    # I001 aside: the harness/kind import order depends on the package name (not an answer problem).
    lint = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "--ignore", "I001", "."], cwd=project, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    package = next(p for p in (project / "src").iterdir() if p.name != "bench_harness")
    spec = importlib.util.spec_from_file_location(f"drawn_params_{id(answers)}", package / "params.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    configurations = module.grid()
    assert configurations and len(set(configurations)) == len(configurations)
    with pytest.raises(dataclasses.FrozenInstanceError):
        configurations[0].seed = 1
    declared = {p["name"]: TYPES[p["type"]] for p in answers["params"]}
    for configuration in configurations:
        for name, expected in declared.items():
            assert type(getattr(configuration, name)) is expected, (name, getattr(configuration, name))


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(answers=answer_sets())
def test_an_answer_set_is_refused_with_a_message_or_renders_a_sound_project(tmp_path_factory, answers) -> None:
    outcome = refusal_or_project(tmp_path_factory.mktemp("drawn") / "p", answers)
    event("refused" if isinstance(outcome, str) else "rendered")
    if isinstance(outcome, str):
        assert "Validation error for question" in outcome and len(outcome.split(": ", 1)[1]) > 10, outcome
        return
    check_statically(outcome, answers)


VALID_SETS = [
    {
        "params": [
            {
                "name": "model_name",
                "type": "str",
                "default": "most_frequent",
                "values": ["most_frequent", "random_forest"],
            },
            {"name": "regularization", "type": "float", "default": 1, "digits": 2, "values": [0.5, 2]},
            {"name": "seed", "type": "int", "default": 3},
            {"name": "top_k", "type": "int", "default": 5, "values": [1, 5]},
            {"name": "temperature", "type": "float", "default": 0.7},
            {"name": "shuffle", "type": "bool", "default": False, "values": [True, False]},
        ],
        "custom_segmentations": ["age_bucket"],
        "engine": "sqlite",
        "versioning": "minimal",
    },
]


@pytest.mark.slow
@pytest.mark.parametrize("answers", VALID_SETS, ids=["custom-grid"])
def test_a_valid_custom_answer_set_passes_its_own_make_test(rendered, answers: dict[str, Any]) -> None:
    project = rendered("custom-grid", answers)  # copier's tasks included, as test_render_matrix's renders
    done = make(project, "test")
    assert " passed" in done.stdout and " failed" not in done.stdout
