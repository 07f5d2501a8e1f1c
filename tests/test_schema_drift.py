"""Schema drift is matched by type and shape, not by name alone (issue 13 point 6). In-process."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template" / "src"))

from bench_harness._checks import schema  # noqa: E402


def test_one_column_gone_and_one_of_the_same_type_new_is_a_rename_whatever_the_names() -> None:
    drift = schema.compare(
        {"params_model": "TEXT", "params_k_features": "INTEGER"},
        {"params_model": "TEXT", "params_top_k": "INTEGER"},
    )
    assert drift.renames == [("params_top_k", "params_k_features")]
    errors, _ = schema.report(drift, "benchmark.db")
    assert any("--rename params_top_k=params_k_features" in line for line in errors), errors


def test_a_gone_column_of_another_type_is_not_a_rename() -> None:
    drift = schema.compare({"params_temperature": "REAL"}, {"params_top_k": "INTEGER"})
    assert drift.renames == [] and not drift.has_renames
    errors, notes = schema.report(drift, "benchmark.db")
    assert errors == []
    assert any("new parameter column params_temperature" in n for n in notes)
    assert any("params_top_k is recorded but no longer" in n for n in notes)


def test_similar_names_are_paired_among_several_of_one_type_and_the_rest_is_ambiguous() -> None:
    drift = schema.compare(
        {"params_learning_rate": "REAL", "params_alpha": "REAL", "params_omega": "REAL"},
        {"params_learning_rat": "REAL", "params_zeta": "REAL", "params_sigma": "REAL"},
    )
    assert ("params_learning_rat", "params_learning_rate") in drift.renames
    assert {new for new, _ in drift.ambiguous} == {"params_alpha", "params_omega"}
    errors, _ = schema.report(drift, "benchmark.db")
    assert errors and any("pair it yourself" in line for line in errors)


def test_untyped_names_still_pair_by_similarity() -> None:
    drift = schema.compare(["params_model_name"], ["params_model_nam"])
    assert drift.renames == [("params_model_nam", "params_model_name")]


PARAMS_K = """
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Params:
    model_name: str = "parity"
    k_features: int = 0


def grid():
    return [Params()]
"""


def test_a_recorded_database_and_renamed_params_fail_the_check(toy: Path) -> None:
    """top_k -> k_features (one int gone, one int new) was silent before: now it is an error with the fix."""
    db = toy / "benchmark.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE predictions (track_id TEXT, params_model_name TEXT, params_top_k INTEGER)")
        con.execute("CREATE TABLE metrics (track_id TEXT, params_model_name TEXT, params_top_k INTEGER)")
    (toy / "src" / "toy_bench" / "params.py").write_text(PARAMS_K)
    from bench_harness._core.config import load_config

    drift = schema.check(load_config())
    assert drift.renames == [("params_top_k", "params_k_features")]
    from bench_harness._cli.main import main

    assert main(["check-schema"]) != 0
    assert main(["check-schema", "--rename", "top_k=k_features"]) == 0
    assert main(["check-schema"]) == 0
    with sqlite3.connect(db) as con:
        assert "params_k_features" in [r[1] for r in con.execute("PRAGMA table_info(predictions)")]


@pytest.mark.parametrize(
    "annotation, storage", [("str", "TEXT"), ("int", "INTEGER"), ("bool", "INTEGER"), ("float", "REAL")]
)
def test_storage_type_of_each_parameter_type(annotation: str, storage: str) -> None:
    from dataclasses import make_dataclass

    cls = make_dataclass("P", [("x", annotation)])
    assert schema.expected_types(cls) == {"params_x": storage}
