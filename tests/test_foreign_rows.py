"""Rows another tool logged into the harness's tables (issue 13 point 5).

xetrack's own documented use, `Tracker(db, table="predictions").log({...})` or `.track(...)`, writes
rows without config_id / cache_key into the predictions table (and the metrics table). Before the
fix `make validate` failed on them, `make sql` recipes showed only them and `make report` crashed on
`config_id[:10]`. Now every command picks the harness's own latest experiment, says how many rows it
ignored, and never crashes. In-process on the toy (tests/toy.py), with the real xetrack Tracker.
"""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import pytest
import toy as toy_project

NOTE = "rows not written by the harness (e.g. xetrack Tracker logs)"


def double(x: int) -> int:
    return 2 * x


def log_foreign_rows(db: Path) -> None:
    """What a user following xetrack's README does: log and track into the harness's tables, last."""
    from xetrack import Tracker

    tracker = Tracker(str(db), table="predictions", params={"model": "by-hand"})
    tracker.log({"input_id": 1, "prediction": 1, "note": "checked by hand"})
    tracker.track(double, args=[3])
    # A hand-logged row that even names an experiment version: the harness's and a later, tag-like one.
    Tracker(str(db), table="predictions", params={"experiment_version": "e0.0.2"}).log({"input_id": 5, "prediction": 0})
    Tracker(str(db), table="predictions", params={"experiment_version": "e0.0.9"}).log({"input_id": 6, "prediction": 1})
    Tracker(str(db), table="metrics").log({"accuracy": 0.99, "experiment_version": "e0.0.9"})


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The toy in a git repository, two tagged harness experiments, then foreign rows logged after them."""
    root = toy_project.write_project(tmp_path / "toy")
    (root / ".gitignore").write_text("*.db\n__pycache__/\nreports/\nexports/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    git(root, "add", "-A")
    for version in ("e0.0.1", "e0.0.2"):  # what `make experiment` leaves: a commit and its tag per experiment
        git(root, "commit", "-q", "--allow-empty", "-m", version)
        db = toy_project.record_experiments(root, monkeypatch, (version,))
        git(root, "tag", "-a", version, "-m", version)
    log_foreign_rows(db)
    monkeypatch.chdir(root)
    yield from toy_project.activate(root, monkeypatch)


@pytest.fixture
def bench(capsys: pytest.CaptureFixture):
    """bench(*argv) -> (exit code, stdout): the `bench` command in-process (some commands bind sys.stdout)."""
    from bench_harness._cli.main import main

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(argv))
        return code, capsys.readouterr().out

    return run


def test_validate_ignores_and_counts_foreign_rows(project: Path, bench) -> None:
    code, out = bench("validate")
    assert code == 0, out
    assert "version e0.0.2" in out
    assert f"4 {NOTE}: ignored here; keep them in a table of their own" in out
    assert "Total executions: 24" in out  # the harness's 2 configurations x 12 inputs, no hand-logged row
    code, out = bench("validate", "--all")
    assert code == 0, out


def test_recipes_show_the_harness_latest_experiment(project: Path, bench) -> None:
    code, out = bench("sql", "@by_config", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["params_model_name"] for r in rows) == ["always_even", "parity"]
    assert {r["n_predictions"] for r in rows} == {"12"}
    code, out = bench("sql", "@runs", "--csv")
    runs = list(csv.DictReader(io.StringIO(out)))
    assert [r["experiment_version"] for r in runs] == ["e0.0.1", "e0.0.2"]
    code, out = bench("recipes")
    assert code == 0 and "e0.0.9" not in out and "experiment_version = 'e0.0.2'" in out


def test_report_names_the_foreign_rows_and_does_not_crash(project: Path, bench) -> None:
    code, out = bench("report")
    assert code == 0, out
    results = (project / "reports" / "e0.0.2" / "RESULTS.md").read_text()
    assert NOTE in results and NOTE in out
    assert "model_name=parity" in results or "parity" in results
    assert (project / "reports" / "e0.0.2" / "report.html").is_file()


def test_export_rescore_compare_metrics_inspect(project: Path, bench) -> None:
    code, out = bench("export", "--version", "e0.0.2", "--format", "csv")
    assert code == 0 and NOTE in out
    exported = list(csv.DictReader((project / "exports" / "predictions.csv").open()))
    assert len(exported) == 24 and all(row["config_id"] for row in exported)
    code, out = bench("export", "--format", "csv")  # every row, as stored: nothing is lost
    assert len(list(csv.DictReader((project / "exports" / "predictions.csv").open()))) == 24 * 2 + 4

    code, out = bench("rescore")
    assert code == 0 and out.startswith("e0.0.2: 24 rows re-scored"), out

    code, out = bench("compare")
    assert code == 0, out
    assert "e0.0.2 compared with e0.0.1" in out

    code, out = bench("metrics")
    assert code == 0 and "e0.0.9" not in out and "e0.0.2" in out and NOTE in out

    code, out = bench("inspect", "--experiment")
    assert NOTE in out
    assert "missing values in critical field" not in out and "function_result" not in out


def test_notebook_helpers_pick_the_harness_rows(project: Path, bench) -> None:
    from bench_harness._results import frames

    assert frames.experiment_versions() == ["e0.0.1", "e0.0.2"]
    predictions = frames.load_predictions()
    assert len(predictions) == 24 and predictions["config_id"].notna().all()
    assert set(frames.load_metrics()["experiment_version"]) == {"e0.0.2"}


def test_only_foreign_rows_is_no_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A database holding nothing but Tracker logs: commands say there is no experiment, never crash."""
    root = toy_project.write_project(tmp_path / "toy")
    from xetrack import Tracker

    Tracker(str(root / "benchmark.db"), table="predictions").log({"input_id": 1, "prediction": 1})
    monkeypatch.chdir(root)
    for _ in toy_project.activate(root, monkeypatch):
        from bench_harness._cli.main import main

        def bench(*argv: str) -> tuple[int, str]:
            code = main(list(argv))
            return code, capsys.readouterr().out

        code, out = bench("validate")
        assert code == 1 and "lacks the harness columns" in out
        code, _ = bench("report")
        assert code == 1
        code, _ = bench("rescore")
        assert code == 1
