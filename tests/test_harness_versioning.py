"""Schema drift, column renames on both engines, tag messages, the data guard, the latest version.

Fast unit tests on temporary databases, in-process on the toy benchmark (tests/toy.py): they ran
inside every rendered project until issue 12. The whole workflow (tags, DVC, reproduce) is tested
in rendered projects by test_versioning.py.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

# The harness modules, imported afresh for each test once the toy is activated.
H = SimpleNamespace()


@pytest.fixture(autouse=True)
def harness(toy: Path) -> SimpleNamespace:
    from bench_harness._checks import schema
    from bench_harness._versioning import versioning

    H.__dict__.update(schema=schema, versioning=versioning)
    return H


@pytest.fixture
def config(toy: Path, tmp_path: Path):
    from bench_harness._core.config import load_config

    return dataclasses.replace(load_config(), db_path=tmp_path / "test.db", dev_db_path=tmp_path / "dev.db")


def make_table(db: Path, table: str, columns: list[str], rows: int = 3) -> None:
    with sqlite3.connect(db) as con:
        con.execute(f'CREATE TABLE "{table}" (track_id TEXT, {", ".join(f"{c} TEXT" for c in columns)})')
        values = ", ".join("?" for _ in range(len(columns) + 1))
        con.executemany(f'INSERT INTO "{table}" VALUES ({values})', [[f"t{i}", *columns] for i in range(rows)])


def test_a_renamed_field_is_a_probable_rename_and_a_new_one_is_not() -> None:
    drift = H.schema.compare(["params_learning_rate", "params_model"], ["params_lr_rate", "params_model"])
    assert drift.renames == [("params_lr_rate", "params_learning_rate")]
    errors, _ = H.schema.report(drift, "x.db")
    assert "uv run bench check-schema --rename params_lr_rate=params_learning_rate" in "\n".join(errors)
    added = H.schema.compare(["params_model", "params_seed"], ["params_model"])
    assert added.new == ["params_seed"] and not added.renames
    assert H.schema.report(added, "x.db")[0] == []
    assert H.schema.compare(["params_a"], []).clean, "nothing recorded yet: the first run defines the schema"


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_rename_moves_the_column_in_place_and_merges_into_an_existing_one(tmp_path: Path, engine: str) -> None:
    db = tmp_path / "r.db"
    make_table(db, "p", ["params_lr", "params_model"])
    assert H.schema.rename_column(db, "p", "params_lr", "params_learning_rate", engine) == "renamed"
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO p (track_id, params_learning_rate) VALUES ('new', '0.1')")
        con.execute("ALTER TABLE p ADD COLUMN params_lr TEXT")
        con.execute("INSERT INTO p (track_id, params_lr) VALUES ('old', '0.2')")
    assert H.schema.rename_column(db, "p", "params_lr", "params_learning_rate", engine) == "merged"
    with sqlite3.connect(db) as con:
        names = [r[1] for r in con.execute("PRAGMA table_info(p)")]
        nulls = con.execute("SELECT COUNT(*) - COUNT(params_learning_rate) FROM p").fetchone()[0]
    assert "params_lr" not in names and nulls == 0, "old and new rows share one column"
    assert H.schema.rename_column(db, "p", "params_lr", "params_learning_rate", engine) == "absent"


def test_the_tag_message_names_the_best_configuration_its_score_and_the_data() -> None:
    rows = [
        {"params_model_name": "a", "params_seed": 0, "accuracy": 0.5, "git_dirty": 0},
        {"params_model_name": "b", "params_seed": 0, "accuracy": 0.875, "git_dirty": 0},
    ]
    assert H.versioning.tag_message(rows, ["accuracy"], "abc1234") == "model=b | acc=0.8750 | data=abc1234 | 2 configs"
    latency = [{"params_model_name": "a", "latency_p50": 0.2}, {"params_model_name": "b", "latency_p50": 0.1}]
    message = H.versioning.tag_message(latency, ["latency_p50"], "abc1234", dirty=True)
    assert message == "model=b | latency_p50=0.1000 | data=abc1234 | 2 configs | dirty", "lower latency is better"


def test_the_tag_message_heads_with_the_kinds_quality_measure_not_the_first_chosen_metric(config) -> None:
    """A regression benchmark's chosen metrics start with latency: its tags name the configuration with
    the lowest mae (the kind's quality measure), not the fastest one."""
    cfg = dataclasses.replace(config, quality="mae", metrics=("latency_p50", "mae", "r2"))
    rows = [
        {"params_model_name": "ridge", "latency_p50": 0.3, "mae": 45.2, "r2": 0.36},
        {"params_model_name": "mean_baseline", "latency_p50": 0.01, "mae": 58.3, "r2": 0.0},
    ]
    message = H.versioning.tag_message(rows, H.versioning.headline_metrics(cfg), "abc1234")
    assert message == "model=ridge | mae=45.2000 | data=abc1234 | 2 configs"
    assert H.versioning.headline_metrics(dataclasses.replace(cfg, quality="accuracy")) == ["accuracy", *cfg.metrics]


def test_the_guard_keeps_databases_and_large_files_out_of_git(config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(config, root=tmp_path, data_path=tmp_path / "data" / "items.jsonl")
    (tmp_path / "big.txt").write_bytes(b"x" * (H.versioning.MAX_GIT_FILE_BYTES + 1))
    staged = ["results.db", "big.txt", "README.md", "data/items.jsonl", "data.dvc"]
    flagged = {line.split(":")[0] for line in H.versioning.guard(cfg, staged)}
    expected = {"results.db", "big.txt"} | ({"data/items.jsonl"} if cfg.versioning != "minimal" else set())
    assert flagged == expected
