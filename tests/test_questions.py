"""Every answer is validated by copier with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, render

ALLOWED_KEYS = {
    "type",
    "help",
    "default",
    "choices",
    "multiselect",
    "when",
    "validator",
    "secret",
    "placeholder",
    "multiline",
    "qmark",
}

# The classification kind's parameters (its predict.py reads all three).
KIND_PARAMS = [
    {"name": "model_name", "type": "str", "default": "logistic_regression"},
    {"name": "regularization", "type": "float", "default": 1.0},
    {"name": "seed", "type": "int", "default": 0},
]
MISTYPED_PARAMS = [
    ({"name": "t", "type": "float", "default": float("nan")}, "params 't': default nan is not a finite number"),
    ({"name": "t", "type": "float", "default": float("inf")}, "params 't': default inf is not a finite number"),
    ({"name": "t", "type": "float", "default": 0.5, "values": [0.1, float("-inf")]}, "value -inf is not a finite"),
    (
        {"name": "t", "type": "float", "default": 0.5, "values": ["hot", 0.7]},
        "params 't': value \"hot\" is not a number",
    ),
    ({"name": "t", "type": "float", "default": 0.5, "values": [True]}, "params 't': value True is not a number"),
    ({"name": "k", "type": "int", "default": "abc"}, "params 'k': default \"abc\" is not an int"),
    ({"name": "k", "type": "int", "default": 1, "values": [1, 2.5, "x"]}, "params 'k': value 2.5 is not an int"),
    ({"name": "k", "type": "int", "default": 1, "values": [1, "x"]}, "params 'k': value \"x\" is not an int"),
    ({"name": "k", "type": "int", "default": 2**63}, "does not fit in 64 bits"),
    ({"name": "b", "type": "bool", "default": True, "values": ["false", True]}, 'value "false" is not a bool'),
    ({"name": "b", "type": "bool", "default": "true"}, 'default "true" is not a bool'),
    ({"name": "s", "type": "str", "default": "a", "values": [1, 2]}, "params 's': value 1 is not a str"),
    ({"name": "s", "type": "str", "default": "line\nbreak"}, "contains a control, invisible or line-break character"),
    ({"name": "s", "type": "str", "default": "x" * 201}, "longer than 200 characters"),
    ({"name": "s", "type": "str", "default": "a", "values": ["a", "a"]}, 'value "a" is in values twice'),
    (
        {"name": "t", "type": "float", "default": 0.5, "digits": 1, "values": [0.12, 0.1]},
        "in values twice (after rounding",
    ),
    ({"name": "k", "type": "int", "default": 1, "digits": 2}, "digits applies to floats only"),
    ({"name": "_k", "type": "int", "default": 1}, "must be a lowercase Python identifier starting with a letter"),
    ({"name": "self", "type": "int", "default": 1}, "'self' is a Python keyword"),
    ({"name": "k" * 41, "type": "int", "default": 1}, "the name must be at most 40 characters"),
    (
        {"name": "k", "type": "int", "default": 1, "values": list(range(10001))},
        "the grid has 10001 configurations",
    ),
]

BAD_ANSWERS = [
    ({"project_name": "9lives"}, "project_name must start with a letter"),
    ({"package_name": "My-Package"}, "package_name must be a lowercase Python identifier"),
    ({"package_name": "1abc"}, "package_name must be a lowercase Python identifier"),
    ({"package_name": "harness"}, "package_name 'harness' is reserved"),
    ({"author_email": "nobody"}, "author_email must look like name@domain"),
    ({"questions": []}, "questions must list at least one question"),
    ({"questions": "just a string"}, "questions must be a YAML list"),
    ({"custom_segmentations": ["Bad Name"]}, "'Bad Name' is not a lowercase identifier"),
    ({"custom_segmentations": ["difficulty"]}, "'difficulty' is already a chosen segmentation"),
    ({"params": []}, "params must declare at least one parameter"),
    ({"params": [{"name": "class", "type": "str", "default": "x"}]}, "'class' is a Python keyword"),
    ({"params": [{"name": "Lr", "type": "float", "default": 0.1}]}, "name 'Lr' must be a lowercase Python identifier"),
    (
        {"params": [{"name": "tags", "type": "list", "default": []}]},
        "type 'list' is not allowed: use an immutable type",
    ),
    ({"params": [{"name": "lr", "type": "float"}]}, "params 'lr': a default is required"),
    ({"params": [{"name": "lr", "type": "float", "default": "fast"}]}, "params 'lr': default \"fast\" is not a number"),
    ({"params": [{"name": "k", "type": "int", "default": 1.5}]}, "params 'k': default 1.5 is not an int"),
    ({"params": [{"name": "flag", "type": "bool", "default": "yes"}]}, "params 'flag': default \"yes\" is not a bool"),
    (
        {"params": [{"name": "lr", "type": "float", "default": 0.1, "digits": -1}]},
        "digits must be an integer from 0 to 15",
    ),
    (
        {"params": [{"name": "a", "type": "int", "default": 1}, {"name": "a", "type": "int", "default": 2}]},
        "name 'a' is declared twice",
    ),
    ({"params": [{"name": "a", "type": "int", "default": 1, "values": []}]}, "values must be a non-empty list"),
    ({"metrics": []}, "metrics: choose at least one metric"),
    ({"data_path": "/etc/passwd.jsonl"}, "data_path must be a relative path inside the project"),
    ({"data_path": "elsewhere/x.jsonl"}, "data_path must be under data/"),
    ({"data_format": "csv", "data_path": "data/x.jsonl"}, "must end in .csv to match data_format"),
    ({"db_path": "results"}, "db_path must be a file name ending in .db"),
    ({"predictions_table": "my-table"}, "predictions_table must be a SQL identifier"),
    ({"predictions_table": "select"}, "predictions_table 'select' is a reserved word"),
    ({"metrics_table": "Metrics!"}, "metrics_table must be a SQL identifier"),
    ({"metrics_table": "predictions"}, "metrics_table must differ from predictions_table"),
    ({"dvc_remote": "  "}, "dvc_remote must not be empty"),
    # issue 14 rows 2, 11, 12; issue 13 point 7: nothing is coerced, nothing a file cannot hold
    *[({"params": [*KIND_PARAMS, p]}, m) for p, m in MISTYPED_PARAMS],
    ({"params": [KIND_PARAMS[0], KIND_PARAMS[2]]}, "params: 'regularization' is missing: the classification kind"),
    ({"params": [{**KIND_PARAMS[0], "values": ["gpt", "random_forest"]}, *KIND_PARAMS[1:]]}, 'value "gpt" is not one'),
    (
        {"params": [KIND_PARAMS[0], {**KIND_PARAMS[1], "type": "int", "default": 1}, KIND_PARAMS[2]]},
        "reads it as a float",
    ),
    (
        {"params": [KIND_PARAMS[0], {**KIND_PARAMS[1], "values": [0.0, 1.0]}, KIND_PARAMS[2]]},
        "value 0.0 must be above 0",
    ),
    ({"kind": "llm", "params": [{"name": "temperature", "type": "float", "default": 0.0}]}, "'model_name' is missing"),
    ({"author_email": 'a"b@example.com'}, "author_email must look like name@domain"),
    ({"author_email": "a b@example.com"}, "author_email must look like name@domain"),
    ({"author_email": "a,b@example.com"}, "author_email must look like name@domain"),
    ({"author_email": "jane@example.com."}, "author_email must look like name@domain"),
    ({"author_name": "Jane\nDoe"}, "author_name must be one line"),
    ({"author_name": " Jane"}, "author_name must not start or end with a space"),
    ({"description": "two\nlines"}, "description must be one line"),
    ({"description": "hidden\u202eevil"}, "description must be one line"),
    ({"description": "x" * 301}, "description must be at most 300 characters"),
    ({"questions": ["ok?", "a\tb"]}, "questions[1] must be one line"),
    ({"project_name": "x" * 65}, "project_name must be at most 64 characters"),
    ({"project_name": "Pandas"}, "a dependency of the benchmark"),
    ({"custom_segmentations": ["error"]}, "'error' is a column the harness writes"),
    ({"custom_segmentations": ["age", "age"]}, "'age' is listed twice"),
    ({"dvc_remote": "s3://b/`x`"}, "dvc_remote must be a path or URL in printable ASCII"),
    ({"dvc_remote": "../stockage-é"}, "dvc_remote must be a path or URL in printable ASCII"),
    ({"dvc_remote": "../x "}, "dvc_remote must not start or end with a space"),
    ({"data_path": "data/a b\n.jsonl"}, "data_path may hold only letters"),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS, ids=[m for _, m in BAD_ANSWERS])
def test_an_invalid_answer_is_refused_with_its_message(tmp_path: Path, answers: dict, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        render(tmp_path / "p", answers, tasks=False, pretend=True)
    assert message in str(refused.value)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("choice", ["engine", "versioning", "data_format", "kind", "data_size"])
def test_a_choice_outside_the_list_is_refused(tmp_path: Path, choice: str) -> None:
    with pytest.raises(ValueError, match="Invalid choice"):
        render(tmp_path / "p", {choice: "nonsense"}, tasks=False, pretend=True)


def test_the_defaults_are_valid(tmp_path: Path) -> None:
    render(tmp_path / "p", tasks=False)
    assert (tmp_path / "p" / "benchmark.toml").is_file()


def test_every_question_uses_only_keys_copier_knows() -> None:
    """copier ignores unknown keys silently: a typo such as `validater:` would do nothing."""
    config = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    for name, question in config.items():
        if name.startswith("_"):
            continue
        assert set(question) <= ALLOWED_KEYS, f"{name}: unknown keys {set(question) - ALLOWED_KEYS}"
        assert "help" in question, f"{name} has no help text"
