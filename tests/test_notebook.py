"""The generated notebook (notebooks/analysis.py, marimo) runs headless over a real results database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import toy

NOTEBOOK = Path(__file__).resolve().parents[1] / "template" / "notebooks" / "analysis.py"


@pytest.mark.slow  # marimo runs the notebook in its own process: the full tier
def test_the_notebook_runs_every_cell_headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = toy.write_project(tmp_path / "toy", files={"predict": toy.OLD_STYLE_PREDICT})
    toy.record_experiments(root, monkeypatch, versions=("e0.0.1", "e0.0.2", "e0.0.10"))
    env = {**os.environ, "BENCH_ROOT": str(root), "PYTHONPATH": f"{toy.HARNESS_SRC}{os.pathsep}{root / 'src'}"}
    done = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "experiments: e0.0.1, e0.0.2, e0.0.10" in out, out  # ordered as versions, not as text
    assert "no error rows" in out
    assert "cache_hits" in out and "by difficulty" in out and "p50" in out


def test_results_helpers_pick_the_latest_experiment_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = toy.write_project(tmp_path / "toy", files={"predict": toy.OLD_STYLE_PREDICT})
    toy.record_experiments(root, monkeypatch, versions=("e0.0.9", "e0.0.10"))
    for _ in toy.activate(root, monkeypatch):
        import bench_harness as bench

        assert bench.experiment_versions() == ["e0.0.9", "e0.0.10"]
        latest = bench.load_predictions()
        assert set(latest["experiment_version"]) == {"e0.0.10"} and len(latest) == 24
        assert len(bench.load_predictions(None)) == 48
        assert set(bench.load_metrics("e0.0.9")["experiment_version"]) == {"e0.0.9"}
        assert bench.sql("SELECT COUNT(*) AS n FROM db.metrics")["n"][0] == 4
