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
    ({"params": [{"name": "lr", "type": "float", "default": "fast"}]}, "params 'lr': default fast is not a number"),
    ({"params": [{"name": "k", "type": "int", "default": 1.5}]}, "params 'k': default 1.5 is not an int"),
    ({"params": [{"name": "flag", "type": "bool", "default": "yes"}]}, "params 'flag': default yes is not a bool"),
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
