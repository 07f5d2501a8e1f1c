"""Render answer sets (engine x multiprocessing x versioning x data format), run what they generate.

For each: the generated `make test` passes, `make experiment` records exactly one computed row per
(input, configuration) and one metrics row per configuration, both readable with xetrack's
Reader and the `xt` CLI, and a second `make experiment` executes no prediction.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import TEMPLATE, RenderCache, make, project_env, run, share_bytecode, tool, twin_of
from xetrack import Reader

ANSWER_SETS = {
    "duckdb-serial-standard": {},
    "sqlite-processes-minimal-csv": {  # also test_versioning's minimal project (the same answers, one render)
        "multiprocessing": True,
        "versioning": "minimal",
        "data_format": "csv",
        "predictions_table": "preds",
        "metrics_table": "summary",
        "package_name": "wine_bench",
    },
    "duckdb-processes-maximum-parquet": {
        "multiprocessing": True,
        "engine": "duckdb",
        "versioning": "maximum",
        "data_format": "parquet",
        "db_path": "results.db",
    },
    "sqlite-serial-standard-threads": {
        "engine": "sqlite",
        "use_cache": True,
        "log_system_params": True,
        "params": [
            {
                "name": "model_name",
                "type": "str",
                "default": "logistic_regression",
                "values": ["logistic_regression", "most_frequent"],
            },
            {"name": "regularization", "type": "float", "default": 0.123456, "digits": 2, "values": [0.5, 2.0]},
            {"name": "seed", "type": "int", "default": 7},
        ],
    },
}


def config_of(project: Path) -> dict:
    return tomllib.loads((project / "benchmark.toml").read_text())


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchone()[0]


@pytest.fixture(scope="module", params=list(ANSWER_SETS))
def project(request: pytest.FixtureRequest, rendered) -> Path:
    return rendered(request.param, ANSWER_SETS[request.param])


@pytest.mark.slow
def test_generated_tests_pass(project: Path) -> None:
    done = make(project, "test")
    assert " passed" in done.stdout and " failed" not in done.stdout


@pytest.mark.slow
def test_experiment_records_one_row_per_input_and_configuration(project: Path) -> None:
    cfg = config_of(project)
    db = project / cfg["database"]["path"]
    preds, metrics = cfg["database"]["predictions_table"], cfg["database"]["metrics_table"]
    make(project, "experiment")
    engine = cfg["database"]["engine"]
    if engine == "duckdb":
        run(
            project,
            "uv",
            "run",
            "python",
            "-c",
            "from bench_harness._storage.duck import ensure_sqlite_extension as e; e()",
        )
    table = Reader(str(db), engine=engine, table=preds).to_df()
    computed = table[table["cache"] == ""]
    n_configs = table["config_id"].nunique()
    assert n_configs >= 2
    assert computed.groupby(["config_id", "input_id"]).size().max() == 1
    assert len(computed) == computed["input_id"].nunique() * n_configs
    assert table["error"].isna().all()
    summary = Reader(str(db), engine=engine, table=metrics).to_df()
    assert len(summary) == n_configs
    assert set(summary["n"]) == {computed["input_id"].nunique()}
    best = summary["accuracy"].max()
    assert best > 0.9, "a scikit-learn baseline on wine is far above chance"
    assert summary["accuracy"].min() < 0.5, "the most-frequent baseline is near chance"
    # the xt CLI reads the same table
    xt = run(project, tool(project, "xt"), "head", db.name, "--table", preds, "--engine", engine, "--n", "3")
    assert "input_id" in xt.stdout

    # The same experiment again records nothing (no tag, no commit, no rows); forced, it is one of cache hits only.
    head = run(project, "git", "rev-parse", "HEAD").stdout
    again = make(project, "experiment")
    assert "nothing changed since e0.0.1" in again.stdout, again.stdout
    assert run(project, "git", "-C", str(project), "tag", "-l", "e*").stdout.split() == ["e0.0.1"]
    assert run(project, "git", "rev-parse", "HEAD").stdout == head
    assert count(db, f'SELECT COUNT(DISTINCT experiment_version) FROM "{metrics}"') == 1, "no unrecorded version"
    second = make(project, "experiment", "ARGS=--force-tag")
    assert " 0 computed" in second.stdout and "nothing changed" not in second.stdout, second.stdout
    assert count(db, f"SELECT COUNT(*) FROM \"{preds}\" WHERE cache = ''") == len(computed)
    # each experiment is tagged; at maximum versioning it ran on its own branch, and main is checked out again
    git = ("git", "-C", str(project))
    assert run(project, *git, "tag", "-l", "e*").stdout.split() == ["e0.0.1", "e0.0.2"]
    branches = run(project, *git, "branch", "--list", "experiment/*").stdout.split()
    assert branches == (["experiment/e0.0.1", "experiment/e0.0.2"] if cfg["versioning"]["level"] == "maximum" else [])
    assert run(project, *git, "branch", "--show-current").stdout.strip() == "main"


@pytest.mark.slow
def test_the_demo_command_works_from_the_cli(tmp_path: Path, rendered_static, render_cache: RenderCache) -> None:
    """Acceptance: `copier copy --trust --defaults <template> X && make -C X experiment`.

    The CLI (tasks included) writes the same files as the API render of the default answers, whose
    `make experiment` test_experiment_records_one_row_per_input_and_configuration runs above; so
    here the experiment is not run a second time, only the project's own `make test` (with the
    bytecode of a finished render of the same uv.lock, when there is one: what it runs is the same).
    """
    target = tmp_path / "X"
    done = subprocess.run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD", str(TEMPLATE), str(target)],
        env=project_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    reference = rendered_static({})
    changed_by_tasks = {".gitignore", ".copier-answers.yml"}  # DVC's entries; how copier was called
    files = [p.relative_to(reference) for p in reference.rglob("*") if p.is_file() and p.name not in changed_by_tasks]
    assert files and [str(f) for f in files if (target / f).read_bytes() != (reference / f).read_bytes()] == []
    assert (target / ".venv").is_dir() and (target / ".git").is_dir(), "the post-copy tasks ran"
    twin = twin_of(target, render_cache.donors())
    if twin is not None:
        share_bytecode(twin / ".venv", target / ".venv")
    tested = make(target, "test")
    assert " passed" in tested.stdout and " failed" not in tested.stdout
    assert json.loads(json.dumps(config_of(target)))["database"]["engine"] == "duckdb"


@pytest.mark.slow
def test_dev_phase_writes_a_subset_to_its_own_database_and_clean_dev_deletes_it(rendered) -> None:
    project = rendered("duckdb-serial-standard", ANSWER_SETS["duckdb-serial-standard"])
    cfg = config_of(project)
    dev_db = project / cfg["database"]["dev_path"]
    make(project, "dev", ARGS="--limit 5")
    rows = count(dev_db, f"SELECT COUNT(*) FROM \"{cfg['database']['predictions_table']}\" WHERE phase = 'dev'")
    configurations = count(dev_db, f'SELECT COUNT(DISTINCT config_id) FROM "{cfg["database"]["metrics_table"]}"')
    assert rows == 5 * configurations
    make(project, "clean-dev")
    assert not dev_db.exists()
