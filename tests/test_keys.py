"""Cache identity (issue 13 point 1, issue 14 row 4): golden keys, matching across key formats, invalidation.

The golden values below were computed by the keys.py of template v0.2.0 (commit 52a9c04) and of
today: a change to any of them means every existing benchmark loses its cache, so it must be a
deliberate release step (keys.KEY_VERSION / keys.INVALIDATED), never an accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import toy

GOLDEN_PREDICT = '''"""A fixed predict module: its source is part of the golden code version."""


def predict(item, params):
    return {"prediction": item["x"] % 2, "raw_response": "fixed"}
'''
GOLDEN_ITEMS = [
    {"input_id": 1, "text": "héllo", "label": 0, "x": 3},
    {"input_id": "001", "text": "b", "label": 1, "x": [1.5, None]},
]
GOLDEN = {
    "config_id": "0652589a51ac0cc6",
    "input_digests": ["7e36742074aa6428", "c3400fea1b98d057"],
    "code_version": "src:4d97584af869",
    "cache_keys": ["6fb598736d7b37b57e36742074aa6428", "6fb598736d7b37b5c3400fea1b98d057"],
}
CONTEXT = {"base_url": "http://127.0.0.1:8001/v1", "model": "tiny-model"}
GOLDEN_WITH_CONTEXT = {
    "code_version": "src:08db9c5b1886+ctx:01f8cc6453d7468f",
    "cache_key": "f332f609981bd4077e36742074aa6428",
}

# Old-style predict (a full row): what a benchmark rendered at v0.2.0 has, and what the toy runs here.
OLD_STYLE_PREDICT = '''
"""Toy predict, old style: the full row."""

from __future__ import annotations

from typing import Any

PREDICT_VERSION: str | None = None


def predict(item: dict[str, Any], params: Any) -> dict[str, Any]:
    value = (item["x"] + params.offset) % 2 if params.model_name == "parity" else 0
    return {"input_id": item["input_id"], "prediction": value, "raw_response": f"answer={value}",
            "ground_truth": item["label"], "latency": 0.0, "error": None, "error_type": None}
'''


@dataclasses.dataclass(frozen=True)
class GoldenParams:
    model_name: str = "logistic_regression"
    temperature: float = 0.7
    top_k: int = 5


@pytest.fixture
def keys() -> Any:
    sys.path.insert(0, str(toy.HARNESS_SRC))
    try:
        toy.forget_modules()
        from bench_harness._storage import keys as module

        yield module
    finally:
        sys.path.remove(str(toy.HARNESS_SRC))
        toy.forget_modules()


def load_module(path: Path, source: str) -> Any:
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_golden_keys_are_exactly_those_of_v0_2_0(keys: Any, tmp_path: Path) -> None:
    module = load_module(tmp_path / "golden_predict.py", GOLDEN_PREDICT)
    config = keys.config_id(GoldenParams())
    digests = keys.input_digests(GOLDEN_ITEMS)
    code = keys.code_version(module)
    assert config == GOLDEN["config_id"]
    assert digests == GOLDEN["input_digests"] == [keys.input_digest(item) for item in GOLDEN_ITEMS]
    assert code == GOLDEN["code_version"]
    assert keys.cache_keys(code, config, digests) == GOLDEN["cache_keys"]
    assert keys.identity(config, digests[0]) == GOLDEN["config_id"] + GOLDEN["input_digests"][0]


def test_predict_version_is_the_code_version(keys: Any, tmp_path: Path) -> None:
    module = load_module(tmp_path / "versioned.py", GOLDEN_PREDICT + 'PREDICT_VERSION = "u1"\n')
    assert keys.code_version(module) == "v:u1"


def test_cache_context_is_part_of_the_code_identity(keys: Any, tmp_path: Path) -> None:
    """Issue 14 row 4: another endpoint (base URL, model) is another identity; no CACHE_CONTEXT: as before."""
    source = GOLDEN_PREDICT + f"\n\ndef CACHE_CONTEXT():\n    return {CONTEXT!r}\n"
    module = load_module(tmp_path / "with_context.py", source)
    code = keys.code_version(module)
    assert code == GOLDEN_WITH_CONTEXT["code_version"]
    assert code.startswith("src:" + hashlib.sha256(source.encode()).hexdigest()[:12] + "+ctx:")
    config, digest = GOLDEN["config_id"], GOLDEN["input_digests"][0]
    assert keys.cache_keys(code, config, [digest]) == [GOLDEN_WITH_CONTEXT["cache_key"]]
    # The context's value decides, not the function: another URL, another identity; same dict, same one.
    module.CACHE_CONTEXT = lambda: {**CONTEXT, "base_url": "http://127.0.0.1:8002/v1"}
    assert keys.code_version(module) != code
    module.CACHE_CONTEXT = lambda: dict(reversed(CONTEXT.items()))
    assert keys.code_version(module) == code


def test_cache_context_must_be_plain_json(keys: Any, tmp_path: Path) -> None:
    module = load_module(tmp_path / "bad_context.py", GOLDEN_PREDICT)
    module.CACHE_CONTEXT = lambda: {"client": object()}
    with pytest.raises(TypeError, match="CACHE_CONTEXT"):
        keys.code_version(module)


# --- the cache across key formats, in process (the toy project) ------------------------------------


def v1_cache_key(code: str, config: str, input_id: Any, item_digest: str) -> str:
    """Template v0.1.0's key: sha256 of the four parts."""
    return hashlib.sha256(f"{code}\x1f{config}\x1f{input_id}\x1f{item_digest}".encode()).hexdigest()[:32]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = toy.write_project(tmp_path / "toy", files={"predict": OLD_STYLE_PREDICT})
    yield from toy.activate(root, monkeypatch)


def run(version: str, **options: Any) -> Any:
    from bench_harness._core.config import load_config
    from bench_harness._run import runner

    opts = runner.RunOptions(experiment_version=version, show_progress=False, **options)
    return runner.run(load_config(), opts)


def rewrite_as_legacy(db: Path, key_format: str) -> int:
    """Make every recorded row look as an older release wrote it: that key format, no identity version."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT rowid, code_version, config_id, input_id, input_digest FROM predictions").fetchall()
        for rowid, code, config, input_id, digest in rows:
            key = v1_cache_key(code, config, input_id, digest) if key_format == "v0.1.0" else "some-future-format"
            con.execute("UPDATE predictions SET cache_key = ?, cache_key_version = NULL WHERE rowid = ?", (key, rowid))
    return len(rows)


@pytest.mark.parametrize("key_format", ["v0.1.0", "unknown"])
def test_rows_of_another_key_format_are_cache_hits(project: Path, key_format: str) -> None:
    first = run("e0.0.1")
    assert first.computed == first.tasks == 24
    rewrite_as_legacy(project / "benchmark.db", key_format)
    second = run("e0.0.2")
    assert (second.computed, second.cache_hits) == (0, 24)
    with sqlite3.connect(project / "benchmark.db") as con:
        hits = con.execute(
            "SELECT cache_key, cache_key_version, code_version, config_id, input_digest FROM predictions "
            "WHERE experiment_version = 'e0.0.2'"
        ).fetchall()
        computed = con.execute(
            "SELECT cache_key, cache_key_version FROM predictions WHERE experiment_version = 'e0.0.1'"
        ).fetchall()
    # A hit is recorded with today's key and identity version, whatever the format it was found under.
    assert {version for _, version, *_ in hits} == {3}
    assert {key for key, *_ in hits} == set(planned_keys(first))
    assert all(key.endswith(digest) for key, _, _, _, digest in hits)
    assert {version for _, version in computed} == {None}


def planned_keys(summary: Any) -> list[str]:
    """Today's keys of the run's tasks, as the runner plans them (not read from the store)."""
    from bench_harness._core.user import user_module
    from bench_harness._storage import keys

    code = keys.code_version(user_module("predict"))
    digests = keys.input_digests(list(user_module("data").load_items()))
    return [keys.key_prefix(code, keys.config_id(c)) + digest for c in summary.configs for digest in digests]


def test_a_resumed_version_keeps_rows_of_another_key_format(project: Path) -> None:
    """Issue 13: a run resumed after an update moved its rows to the history as `stale`, silently."""
    run("e0.0.1")
    rewrite_as_legacy(project / "benchmark.db", "v0.1.0")
    again = run("e0.0.1")
    assert (again.resumed, again.computed, again.moved) == (24, 0, {})


def test_stale_rows_moved_to_the_history_are_counted(project: Path) -> None:
    run("e0.0.1")
    predict = project / "src" / toy.PACKAGE / "predict.py"
    predict.write_text(predict.read_text() + "\n# edited\n")
    toy.forget_modules()
    again = run("e0.0.1")
    assert again.moved == {"stale": 24} and again.computed == 24
    with sqlite3.connect(project / "benchmark.db") as con:
        moved = con.execute("SELECT moved_because, COUNT(*) FROM predictions_error_history GROUP BY 1").fetchall()
    assert moved == [("stale", 24)]


def test_a_release_that_invalidates_results_says_how_many_and_asks_for_the_flag(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run("e0.0.1")
    rewrite_as_legacy(project / "benchmark.db", "v0.1.0")
    from bench_harness._cli import main as cli
    from bench_harness._run import runner
    from bench_harness._storage import keys

    monkeypatch.setattr(keys, "INVALIDATED", {2: "input digests now normalise Unicode"})
    with pytest.raises(runner.StaleResultsError, match=r"24 of this run's tasks .*input digests now normalise"):
        run("e0.0.2")
    with pytest.raises(runner.StaleResultsError, match="--recompute-stale"):
        run("e0.0.1")  # the resumed version too: nothing is moved before the user agrees
    with sqlite3.connect(project / "benchmark.db") as con:
        assert con.execute("SELECT COUNT(*) FROM predictions").fetchone() == (24,)
    assert cli.main(["run", "--experiment-version", "e0.0.1", "--quiet"]) == 2
    assert "REFUSED" in capsys.readouterr().err
    assert cli.main(["run", "--experiment-version", "e0.0.1", "--quiet", "--recompute-stale"]) == 0
    captured = capsys.readouterr()
    assert "invalidates the recorded results of 24" in captured.err
    assert "24 computed" in captured.out and "error_history before recomputing: 24 stale" in captured.out
    # Recomputed rows carry today's identity version: the next run uses them.
    again = run("e0.0.3")
    assert (again.computed, again.cache_hits) == (0, 24)
