"""Validation, analysis and the report (issue 5): numbers checked against scipy or by hand.

The statistics are tested as plain functions (stats.py is template-owned plain Python). The
report, inspection, validation, rescore, SQL shell and export run in a rendered project on small
fixture databases written here, each built to contain exactly what a test looks for; the HTML
report is opened in headless Chromium, which must log no console message, and screenshotted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TEMPLATE, make, run, tool
from scipy import stats as sps

HARNESS = TEMPLATE / "template" / "src" / "bench_harness" / "_results"
PACKAGE = "my_benchmark"  # the default answers' package
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--window-size=1280,2400",
]  # fmt: skip


def load_stats() -> Any:
    spec = importlib.util.spec_from_file_location("bench_stats", HARNESS / "stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stats = load_stats()


# -- statistics against scipy ------------------------------------------------------------------


@pytest.mark.parametrize("k,n", [(0, 10), (7, 10), (10, 10), (30, 40), (512, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    expected = sps.binomtest(k, n).proportion_ci(method="wilson")
    assert stats.wilson(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert stats.wilson(0, 0) is None
    assert stats.wilson(0, 111)[0] == 0.0 and stats.wilson(111, 111)[1] == 1.0  # exact ends, no 3e-18


@pytest.mark.parametrize("b,c", [(0, 0), (2, 9), (9, 2), (40, 60), (5, 5), (0, 7), (300, 350)])
def test_mcnemar_exact_matches_binomial_test(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)


def test_holm_by_hand() -> None:
    # sorted p: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantile_interval_matches_scipy(q: float) -> None:
    values = np.random.default_rng(1).exponential(size=2000)
    point = float(np.quantile(values, q))
    expected = sps.quantile_test(values, q=point, p=q).confidence_interval()
    assert stats.quantile_ci(values, q) == pytest.approx((expected.low, expected.high))
    assert stats.percentile(values, q * 100) == pytest.approx(point)


def test_bootstrap_mean_close_to_scipy() -> None:
    values = np.random.default_rng(2).lognormal(size=300)
    ours, method = stats.bootstrap_mean_ci(values)
    theirs = sps.bootstrap((values,), np.mean, method="percentile", n_resamples=10_000, random_state=3)
    assert method == "bootstrap"
    assert ours == pytest.approx((theirs.confidence_interval.low, theirs.confidence_interval.high), rel=0.03)


def test_paired_bootstrap_equals_resampling_inputs() -> None:
    """The multinomial shortcut has the distribution of resampling input_ids: compare with the slow way."""
    a = np.array([1] * 30 + [0] * 10)
    b = np.array([1] * 20 + [0] * 10 + [1] * 4 + [0] * 6)
    both, only_a = int((a & b).sum()), int((a & (1 - b)).sum())
    only_b, neither = int(((1 - a) & b).sum()), int(((1 - a) & (1 - b)).sum())
    diff, ci, _ = stats.paired_binary_bootstrap(both, only_a, only_b, neither)
    rng = np.random.default_rng(4)
    index = rng.integers(0, a.size, size=(20_000, a.size))
    slow = np.percentile(a[index].mean(axis=1) - b[index].mean(axis=1), [2.5, 97.5])
    assert diff == pytest.approx(a.mean() - b.mean())
    assert ci == pytest.approx(tuple(slow), abs=0.02)


def test_pareto_front_by_hand() -> None:
    quality = [0.75, 0.60, 0.53, 0.75, None]
    cost = [0.001, 0.002, 0.0005, 0.003, 0.0001]
    assert stats.pareto_front(quality, cost) == [True, False, True, False, False]


# -- fixture databases -------------------------------------------------------------------------


def write_db(path: Path, rows: list[dict[str, Any]], table: str = "predictions") -> Path:
    """A results table as the harness writes it: each column typed by its first value (ground truth as text)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    kinds = {int: "INTEGER", float: "REAL"}
    first = {c: next((type(r[c]) for r in rows if r.get(c) is not None), str) for c in columns}
    types = {c: "TEXT" if c == "ground_truth" else kinds.get(first[c], "TEXT") for c in columns}
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {types[c]}' for c in columns)})")
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", [[r.get(c) for c in columns] for r in rows])
    return path


def prediction_row(config: str, i: int, correct: bool, **extra: Any) -> dict[str, Any]:
    truth = i % 3
    predicted = truth if correct else (truth + 1) % 3
    row = {
        "track_id": f"run-{config}", "timestamp": f"2026-01-01 00:00:{i:02d}.000000", "function_name": "predict",
        "function_time": 0.01, "cache": "", "input_id": f"i{i:02d}", "prediction": predicted,
        "raw_response": json.dumps({"answer": predicted, "for": f"i{i:02d}"}),
        "ground_truth": str(truth),  # a TEXT column against an INTEGER prediction: equal when 1 == '1'
        "latency": 0.1 + i * 0.01, "error": None, "error_type": None, "retry_count": 0,
        "difficulty": "easy" if i < 25 else "hard", "cost_usd": {"a": 0.001, "b": 0.002, "c": 0.0005}[config],
        "params_model_name": config, "params_seed": 0, "config_id": f"cfg-{config}", "input_digest": f"d{i}",
        "code_version": "src:1", "cache_key": f"k-{config}-{i}", "experiment_version": "e0.0.1", "phase": "experiment",
    }  # fmt: skip
    row.update(extra)
    return row


A_RIGHT = set(range(30))  # 30 / 40
B_RIGHT = set(range(5, 25)) | set(range(30, 34))  # 24 / 40
C_RIGHT = set(range(20))  # 20 / 38: i38 and i39 failed
B_HITS = set(range(10))  # cache hits with a latency that must not count


def report_rows() -> list[dict[str, Any]]:
    rows = [prediction_row("a", i, i in A_RIGHT) for i in range(40)]
    for i in range(40):
        hit = {"cache": "run-old", "latency": 5.0, "function_time": 0.0} if i in B_HITS else {}
        rows.append(prediction_row("b", i, i in B_RIGHT, **hit))
    for i in range(40):
        failed = {"prediction": None, "raw_response": None, "latency": None, "error": "TimeoutError: slow",
                  "error_type": "API_TIMEOUT"} if i >= 38 else {}  # fmt: skip
        rows.append(prediction_row("c", i, i in C_RIGHT, **failed))
    return rows


@pytest.fixture(scope="module")
def project(rendered) -> Path:
    return rendered("duckdb-serial-standard", {})


def py(project: Path, code: str, *args: str) -> Any:
    """Run `code` with the project's interpreter; it prints JSON, returned parsed."""
    done = run(project, str(project / ".venv" / "bin" / "python"), "-c", code, *args)
    return json.loads(done.stdout.strip().splitlines()[-1])


BUILD_REPORT = """
import dataclasses, json, sys
from pathlib import Path
from bench_harness import _report as report
from bench_harness._core.config import load_config
data = report.build(load_config(), Path(sys.argv[1]))
print(json.dumps(dataclasses.asdict(data)))
"""


@pytest.fixture(scope="module")
def report_data(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    db = write_db(tmp_path_factory.mktemp("report") / "fixture.db", report_rows())
    return db, py(project, BUILD_REPORT, str(db))


def by_label(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["params"]["params_model_name"]: c for c in data["configs"]}


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = sps.binomtest(k, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def test_report_accuracy_and_wilson_intervals(report_data) -> None:
    _, data = report_data
    configs = by_label(data)
    assert data["quality_name"] == "accuracy"
    assert configs["a"]["accuracy"] == pytest.approx(30 / 40)
    assert configs["a"]["accuracy_ci"] == pytest.approx(wilson(30, 40))
    assert configs["b"]["accuracy"] == pytest.approx(24 / 40)
    assert configs["c"]["accuracy"] == pytest.approx(20 / 38)  # over successful rows
    assert configs["c"]["accuracy_ci"] == pytest.approx(wilson(20, 38))
    assert configs["c"]["accuracy_strict"] == pytest.approx(20 / 40)  # errors count as wrong
    assert configs["c"]["error_rate_ci"] == pytest.approx(wilson(2, 40))
    assert (configs["b"]["n_cache_hits"], configs["c"]["n_failed"]) == (10, 2)


def test_report_latency_counts_cache_hits_with_the_latency_they_reuse(report_data) -> None:
    """One definition everywhere (metrics table, terminal, report): a cache hit's recorded latency counts."""
    _, data = report_data
    b = by_label(data)["b"]
    computed = np.array([5.0 if i in B_HITS else 0.1 + i * 0.01 for i in range(40)])
    assert b["n_latency"] == 40
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert b["latency"][name] == pytest.approx(np.percentile(computed, q))
    expected = sps.quantile_test(computed, q=float(np.median(computed)), p=0.5).confidence_interval()
    assert b["latency_ci"]["p50"] == pytest.approx((expected.low, expected.high))
    assert b["latency"]["mean"] == pytest.approx(computed.mean())
    c = by_label(data)["c"]
    assert c["n_latency"] == 38  # failed rows have no latency


def test_report_paired_mcnemar_and_holm(report_data) -> None:
    _, data = report_data
    pairs = {(p["a"], p["b"]): p for p in data["pairs"]}
    ab = pairs[("model_name=a", "model_name=b")]
    only_a, only_b = len(A_RIGHT - B_RIGHT), len(B_RIGHT - A_RIGHT)
    assert (ab["n_shared"], ab["only_a"], ab["only_b"]) == (40, only_a, only_b)
    assert ab["difference"] == pytest.approx((30 - 24) / 40)
    assert ab["p_mcnemar"] == pytest.approx(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    ac = pairs[("model_name=a", "model_name=c")]
    shared = set(range(38))  # c failed on i38, i39: not paired
    b_, c_ = len((A_RIGHT - C_RIGHT) & shared), len((C_RIGHT - A_RIGHT) & shared)
    assert (ac["n_shared"], ac["only_a"], ac["only_b"]) == (38, b_, c_)
    assert ac["p_mcnemar"] == pytest.approx(sps.binomtest(b_, b_ + c_, 0.5).pvalue)
    raw = [p["p_mcnemar"] for p in data["pairs"]]
    order = np.argsort(raw)
    holm = np.maximum.accumulate([min(1.0, (len(raw) - r) * raw[i]) for r, i in enumerate(order)])
    expected = dict(zip(order, holm, strict=True))
    assert [p["p_holm"] for p in data["pairs"]] == pytest.approx([expected[i] for i in range(len(raw))])
    assert ab["ci"][0] < ab["difference"] < ab["ci"][1]


def test_report_segments_pareto_and_disagreements(report_data) -> None:
    _, data = report_data
    cells = {(c["segment"], c["config"]): c for c in data["segments"]["difficulty"]}
    easy_a = cells[("easy", "model_name=a")]
    assert (easy_a["n"], easy_a["value"]) == (25, pytest.approx(1.0))
    hard_b = cells[("hard", "model_name=b")]
    assert hard_b["n"] == 15 and hard_b["value"] == pytest.approx(4 / 15)
    assert hard_b["ci"] == pytest.approx(wilson(4, 15))
    assert {c["config"] for c in data["segments"]["difficulty"]} == {"model_name=a", "model_name=b", "model_name=c"}
    # cost per item: a 0.001 @ .75, b 0.002 @ .60 (dominated by a), c 0.0005 @ .53
    assert data["cost_axis"].startswith("cost")
    assert {k: c["pareto"] for k, c in by_label(data).items()} == {"a": True, "b": False, "c": True}
    disagree = {d["input_id"] for d in data["disagreements"]}
    right = [A_RIGHT, B_RIGHT, C_RIGHT]
    expected = {f"i{i:02d}" for i in range(38) if len({i in r for r in right}) > 1}
    expected |= {f"i{i:02d}" for i in (38, 39) if (i in A_RIGHT) != (i in B_RIGHT)}
    assert disagree == set(sorted(expected)[:25])
    first = data["disagreements"][0]
    assert all(a["raw_response"] and first["input_id"] in a["raw_response"] for a in first["answers"])


def test_report_disagreements_ranked_by_informativeness(report_data) -> None:
    """|correct − accuracy| summed over the configurations, largest first; 'k of N' counts them all."""
    _, data = report_data
    right = {"a": A_RIGHT, "b": B_RIGHT, "c": C_RIGHT}
    answered = {"a": range(40), "b": range(40), "c": range(38)}
    accuracy = {k: len(right[k] & set(answered[k])) / len(answered[k]) for k in right}

    def surprise(i: int) -> float:
        return sum(abs((i in right[k]) - accuracy[k]) for k in right if i in answered[k])

    split = [i for i in range(40) if len({i in right[k] for k in right if i in answered[k]}) > 1]
    ranked = sorted(split, key=lambda i: (-surprise(i), f"i{i:02d}"))
    assert data["n_disagreements"] == len(split)
    assert [d["input_id"] for d in data["disagreements"]] == [f"i{i:02d}" for i in ranked][:25]


NULL_TRUTH = set(range(5))  # model a: no ground truth on i00..i04


def edge_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(40):
        row = prediction_row("a", i, i in A_RIGHT)
        if i in NULL_TRUTH:
            row["ground_truth"] = None
        rows.append(row)
    for i in range(40):  # model c fails on every input
        rows.append(prediction_row("c", i, False, prediction=None, raw_response=None, latency=None,
                                   error="TimeoutError: slow", error_type="API_TIMEOUT"))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def edge_data(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = write_db(tmp_path_factory.mktemp("edge") / "edge.db", edge_rows())
    return py(project, BUILD_REPORT, str(db))


def test_null_ground_truth_excluded_and_counted(edge_data) -> None:
    a = by_label(edge_data)["a"]
    right = len(A_RIGHT - NULL_TRUTH)
    assert a["n_no_truth"] == 5 and a["n_scored"] == 35
    assert a["accuracy"] == pytest.approx(right / 35) and a["accuracy_ci"] == pytest.approx(wilson(right, 35))
    assert a["accuracy_strict"] == pytest.approx(right / 35)
    assert any("no ground truth" in note for note in edge_data["notes"])


def test_all_error_configuration_strict_accuracy_zero_and_empty_pair(edge_data) -> None:
    c = by_label(edge_data)["c"]
    assert c["accuracy"] is None  # no successful row: accuracy has no denominator
    assert c["accuracy_strict"] == 0.0 and c["accuracy_strict_ci"] == pytest.approx(wilson(0, 40))
    (pair,) = edge_data["pairs"]
    assert pair["n_shared"] == 0 and pair["difference"] is None and pair["ci"] is None and pair["p_holm"] is None


def test_unbounded_quantile_interval_matches_scipy_nan() -> None:
    values = np.random.default_rng(7).gamma(2.0, 1.0, 72)
    expected = sps.quantile_test(values, q=float(np.quantile(values, 0.99)), p=0.99).confidence_interval()
    low, high = stats.quantile_ci(values, 0.99)
    assert np.isnan(expected.high) and high == np.inf  # no finite upper bound at n = 72: "≥ max"
    assert low == pytest.approx(expected.low)


def test_regression_pair_p_is_the_bootstrap_of_its_interval() -> None:
    diffs = np.random.default_rng(8).normal(0.05, 0.3, 150)
    mean, ci, p = stats.paired_mean_bootstrap(diffs)
    assert (p < 0.05) == (not ci[0] <= 0 <= ci[1])
    reference = sps.bootstrap((diffs,), np.mean, n_resamples=10_000, method="percentile", random_state=1)
    assert ci == pytest.approx((reference.confidence_interval.low, reference.confidence_interval.high), abs=0.01)


# -- the report in a browser -------------------------------------------------------------------


def png_size_and_detail(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decoded pixels): a blank page has very few."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", blob[16:24])
    pos, idat = 8, b""
    while pos < len(blob):
        length = struct.unpack(">I", blob[pos : pos + 4])[0]
        kind = blob[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += blob[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def chromium_screenshot(page: Path, png: Path, profile: Path) -> str:
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", page.as_uri()],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert png.exists(), done.stderr[-3000:]
    return done.stderr


# .ci/run installs chromium and sets REQUIRE_CHROMIUM=1: there a missing browser fails, never skips.
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("REQUIRE_CHROMIUM"),
    reason="chromium is not installed (.ci/run installs it with apt)",
)
def test_report_html_opens_in_chromium_without_console_errors(report_data, project: Path, tmp_path: Path) -> None:
    db, _ = report_data  # noqa: F841
    make(project, "report", f"ARGS=--db {db} --out {tmp_path / 'reports'}")
    html = tmp_path / "reports" / "e0.0.1" / "report.html"
    markdown = (tmp_path / "reports" / "e0.0.1" / "RESULTS.md").read_text()
    assert "| model_name=a | 40 | 0 | 0 | 0.7500 |" in markdown
    text = html.read_text()
    assert text.count("<svg") >= 4 and "Pareto" in text and "McNemar" in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    # One inline script (sort, filter): nothing loaded from elsewhere, every table readable without it.
    assert text.count("<script") == 1 and "<script src" not in text and '<link rel="stylesheet"' not in text
    assert "<details><summary>" in text or all(len(a["raw_response"] or "") <= 80 for d in _["disagreements"]
                                               for a in d["answers"])  # fmt: skip
    log = chromium_screenshot(html, tmp_path / "report.png", tmp_path / "profile")
    if os.environ.get("REPORT_SCREENSHOT_DIR"):  # for a person to look at
        shutil.copy(tmp_path / "report.png", Path(os.environ["REPORT_SCREENSHOT_DIR"]) / "fixture-report.png")
    assert ":CONSOLE" not in log, log
    width, height, detail = png_size_and_detail(tmp_path / "report.png")
    assert (width, height) == (1280, 2400) and detail > 100
    assert (tmp_path / "report.png").stat().st_size > 30_000
    # The check can fail: a page with a script error is caught the same way.
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    assert ":CONSOLE" in chromium_screenshot(bad, tmp_path / "bad.png", tmp_path / "profile2")


# -- make inspect: each finding from a fixture that has it ---------------------------------------


def dev_rows(n: int = 20) -> list[dict[str, Any]]:
    """A clean development run: one configuration, varied outputs, one (legitimate) error row."""
    rows = []
    for i in range(n):
        row = prediction_row("a", i, i % 4 != 0, experiment_version="dev", phase="dev")
        row.update(
            predicted_prob=0.5 + i / 50, raw_probabilities=json.dumps([0.2, 0.8 - i / 100, i / 100]),
            prompt_tokens=10 + i, difficulty=["easy", "hard"][i % 2], function_time=0.01 + i / 1000,
            cost_usd=0.001 * (1 + i % 3), finish_reason="stop", pricing_digest="c2bf",  # constant, legitimately
        )  # fmt: skip
        rows.append(row)
    rows[-1].update(prediction=None, raw_response=None, latency=None, error="KeyError: 'x'", error_type="MISSING_FIELD")
    return rows


def broken(change: str) -> list[dict[str, Any]]:
    rows = dev_rows()
    if change == "missing":
        rows[3]["ground_truth"] = None
    elif change == "probability":
        rows[4]["predicted_prob"] = 1.2
    elif change == "probability_list":
        rows[5]["raw_probabilities"] = "[0.5, -0.5, 1.0]"
    elif change == "negative":
        rows[6]["latency"] = -0.25
    elif change == "empty_raw":
        rows[7]["raw_response"] = "  "
    elif change == "constant":  # a measurement that never changes was not measured
        for r in rows:
            r["predicted_prob"] = 0.5
    elif change == "string_numbers":
        for r in rows[:-1]:
            r["latency"] = str(r["latency"])
    return rows


INSPECT_CASES = {
    "missing": "missing values in critical field ground_truth: 1 of 20",
    "probability": "predicted_prob: 1 of 20 values outside [0, 1]",
    "probability_list": "raw_probabilities: 1 of 20 values outside [0, 1]",
    "negative": "latency: 1 negative values",
    "empty_raw": "raw_response: 1 of 19 successful rows are empty",
    "constant": "predicted_prob has no variation",
    "string_numbers": "latency: 19 numbers stored as strings",
}
INSPECT = """
import json, sys
from pathlib import Path
from bench_harness._checks.inspection import inspect
import io
print(json.dumps({p: inspect(Path(p), "predictions", out=io.StringIO()) for p in sys.argv[1:]}))
"""


def test_inspect_finds_each_issue_only_where_it_is(project: Path, tmp_path: Path) -> None:
    paths = {"clean": write_db(tmp_path / "clean.db", dev_rows())}
    paths.update({case: write_db(tmp_path / f"{case}.db", broken(case)) for case in INSPECT_CASES})
    issues = py(project, INSPECT, *map(str, paths.values()))
    found = {case: issues[str(path)] for case, path in paths.items()}
    assert found["clean"] == []
    for case, expected in INSPECT_CASES.items():
        assert len(found[case]) == 1 and expected in found[case][0], (case, found[case])


def test_make_inspect_exit_status(project: Path, tmp_path: Path) -> None:
    clean = write_db(tmp_path / "clean.db", dev_rows())
    bad = write_db(tmp_path / "bad.db", broken("negative"))
    ok = make(project, "inspect", f"ARGS=--db {clean}")
    assert "DATA LOOKS GOOD" in ok.stdout and "wine" not in ok.stdout and "i00" in ok.stdout  # sample rows shown
    failed = make(project, "inspect", f"ARGS=--db {bad}", check=False)
    assert failed.returncode != 0 and "ISSUES FOUND (1)" in failed.stdout


# -- make validate -----------------------------------------------------------------------------


def run_rows(version: str = "e0.0.1", hits: bool = False) -> list[dict[str, Any]]:
    rows = []
    for config in ("a", "b"):
        for i in range(10):
            extra = {"experiment_version": version, "track_id": f"{version}-{config}"}
            if hits:
                extra.update(cache=f"e0.0.1-{config}", function_time=0.0)
            if config == "b" and i in (3, 4, 5) and not hits:
                extra.update(error="TimeoutError", error_type="API_TIMEOUT", prediction=None, raw_response=None)
            if config == "a" and i == 9 and not hits:
                extra.update(error="bad json", error_type="PARSE_ERROR", prediction=None)
            rows.append(prediction_row(config, i, True, **extra))
    return rows


def validation(project: Path, db: Path, *args: str) -> subprocess.CompletedProcess:
    return run(project, "make", "--no-print-directory", "validate", f"ARGS=--db {db} {' '.join(args)}", check=False)


def test_validate_clean_run_with_error_breakdown_and_cache_analysis(project: Path, tmp_path: Path) -> None:
    db = write_db(tmp_path / "ok.db", run_rows() + run_rows("e0.0.2", hits=True))
    first = validation(project, db, "--version e0.0.1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 of 20 rows failed (20.0%)" in first.stdout
    breakdown = [line for line in first.stdout.splitlines() if "API_TIMEOUT" in line or "PARSE_ERROR" in line]
    assert any("API_TIMEOUT" in line and " b " in line and " 3 " in line for line in breakdown), breakdown
    assert any("PARSE_ERROR" in line and " a " in line and " 1 " in line for line in breakdown), breakdown
    assert "- Total executions: 20\n- Cache hits: 0 (0.0%)\n- Cache misses: 20 (100.0%)" in first.stdout
    assert "- Unique parameter combinations: 2" in first.stdout
    second = validation(project, db)  # the latest version: every row a cache hit
    assert second.returncode == 0 and "- Cache hits: 20 (100.0%)\n- Cache misses: 0 (0.0%)" in second.stdout


def test_validate_finds_duplicates_nulls_and_gaps(project: Path, tmp_path: Path) -> None:
    rows = run_rows()
    duplicated = rows + [dict(rows[0], track_id="again")]
    recomputed = rows + [dict(r, experiment_version="e0.0.2") for r in rows]  # no cache hit: computed twice
    nulls = [dict(r, params_model_name=None) if r["input_id"] == "i02" else r for r in rows]
    gap = [r for r in rows if not (r["params_model_name"] == "b" and r["input_id"] == "i07")]
    cases = {
        # a row recorded twice was also computed twice: both findings
        "duplicated": (duplicated, ["1 (input, configuration) pairs recorded more than once", "1 results were"]),
        "recomputed": (recomputed, ["16 results were computed again for the same cache key"]),  # errors excluded
        "nulls": (nulls, ["params_model_name: 2 rows with NULL"]),
        "gap": (gap, ["incomplete: configuration cfg-b of e0.0.1 has 9 inputs, others have 10"]),
    }
    for name, (case_rows, expected) in cases.items():
        done = validation(project, write_db(tmp_path / f"{name}.db", case_rows), "--all")
        assert done.returncode != 0 and all(e in done.stdout for e in expected), (name, done.stdout)
        assert done.stdout.count("  ISSUE ") == len(expected), (name, done.stdout)


# -- DuckDB: make sql, make duckdb, make export --------------------------------------------------


def test_sql_shell_and_export(project: Path, report_data, tmp_path: Path) -> None:
    db, _ = report_data
    query = "SELECT params_model_name AS m, COUNT(*) AS n FROM db.predictions WHERE error IS NULL GROUP BY 1 ORDER BY 1"
    done = make(project, "sql", f"Q={query}", f"ARGS=--db {db} --csv")
    assert done.stdout.splitlines() == ["m,n", "a,40", "b,40", "c,38"]
    recipe = make(project, "sql", "Q=@by_config", f"ARGS=--db {db} --csv")
    assert recipe.stdout.splitlines()[0].startswith("params_model_name,params_seed,accuracy")
    assert "a,0,0.75," in recipe.stdout
    script = ".tables\nSELECT COUNT(*) AS total\n  FROM db.predictions;\n.recipe cache_hit_rate\n"
    shell = subprocess.run(
        ["make", "--no-print-directory", "duckdb", f"ARGS=--db {db}"], cwd=project, input=script,
        capture_output=True, text=True, timeout=120, env=__import__("conftest").project_env(),
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert "predictions" in shell.stdout and "120" in shell.stdout and "hit_rate" in shell.stdout
    failing = subprocess.run(
        ["make", "--no-print-directory", "duckdb", f"ARGS=--db {db}"], cwd=project, input="SELECT nope FROM db.x;\n",
        capture_output=True, text=True, timeout=120, env=__import__("conftest").project_env(),
    )  # fmt: skip
    assert failing.returncode != 0 and "Error" in failing.stdout
    make(project, "export", f"ARGS=--db {db} --out {tmp_path / 'exports'}")
    import duckdb

    parquet = tmp_path / "exports" / "predictions.parquet"
    assert duckdb.sql(f"SELECT COUNT(*), COUNT(DISTINCT config_id) FROM '{parquet}'").fetchone() == (120, 3)
    csv_lines = (tmp_path / "exports" / "predictions.csv").read_text().splitlines()
    assert len(csv_lines) == 121 and "raw_response" in csv_lines[0]


# -- make rescore ------------------------------------------------------------------------------


RESCORE = """
import json, sys
from pathlib import Path
from bench_harness._results import rescore
from bench_harness import _report as report
from bench_harness._core.config import load_config
cfg = load_config()
parse = lambda row: json.loads(row["raw_response"])["answer"] if row.get("raw_response") else None
done = rescore.rescore(cfg, Path(sys.argv[1]), parse=parse)
data = report.build(cfg, Path(sys.argv[1]))
print(json.dumps({"done": {k: v for k, v in done.items() if k != "metrics"},
                  "accuracy": {m["config_id"]: m["accuracy"] for m in done["metrics"]},
                  "column": data.prediction_column,
                  "report": {c.config_id: c.accuracy for c in data.configs}}))
"""


def test_rescore_uses_stored_raw_responses_only(project: Path, tmp_path: Path) -> None:
    """The raw responses hold the right answers, `prediction` a wrong parse: rescoring fixes the metrics."""
    rows = [prediction_row("a", i, i in A_RIGHT) for i in range(40)]
    for r in rows:  # the stored raw answer is right; the recorded parse was wrong
        r["raw_response"] = json.dumps({"answer": int(r["ground_truth"])})
    db = write_db(tmp_path / "rescore.db", rows)
    before = sqlite3.connect(db).execute("SELECT COUNT(*), SUM(function_time) FROM predictions").fetchone()
    result = py(project, RESCORE, str(db))
    assert result["done"]["rows"] == 40 and result["done"]["changed"] == 10
    assert result["accuracy"] == {"cfg-a": 1.0}  # a new metrics row, with the new parsing
    assert result["column"] == "scored_prediction" and result["report"] == {"cfg-a": 1.0}
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*), SUM(function_time) FROM predictions").fetchone() == before  # no predict
        assert con.execute("SELECT COUNT(*) FROM predictions WHERE prediction <> ground_truth").fetchone()[0] == 10
        tags = con.execute("SELECT DISTINCT scorer_version FROM metrics").fetchall()
    assert len(tags) == 1 and tags[0][0].startswith("scoring:")


# -- end to end on a real run ------------------------------------------------------------------


def test_real_run_validates_and_reports(project: Path, tmp_path: Path) -> None:
    """A real run of the rendered benchmark, then validate, rescore and report on it through make.

    Into a temporary database ($BENCH_DB) and report folder: the shared project's git tree and
    results, which other tests run experiments in, stay untouched.
    """
    db, out = str(tmp_path / "real.db"), tmp_path / "reports"
    run(project, tool(project, "bench"), "run", "--experiment-version", "e-analysis", "--quiet", BENCH_DB=db)
    assert "VALIDATION PASSED" in make(project, "validate", BENCH_DB=db).stdout
    assert "0 predictions differ" in make(project, "rescore", BENCH_DB=db).stdout
    make(project, "report", "VERSION=e-analysis", f"ARGS=--out {out}", BENCH_DB=db)
    results = (out / "e-analysis" / "RESULTS.md").read_text()
    assert "## Paired comparisons" in results and "## By difficulty" in results
    assert "column `scored_prediction`" in results and "| f1_macro | 95% CI (bootstrap) |" in results
    assert (out / "e-analysis" / "report.html").stat().st_size > 10_000
    assert not (project / "reports").exists()


CORRECT = """
import json, duckdb
from bench_harness._report.model import correct_sql
cases = [['["d3", "d1"]', '["d1", "d3"]', "top1_relevant"], ['["d2", "d1"]', '["d1"]', "top1_relevant"],
         ["1", "1.0", "equal"], ["A", " A ", "equal"], ["A", "B", "equal"], [None, "1", "equal"],
         ["[bad", "[x", "equal"]]
con = duckdb.connect()
print(json.dumps([con.execute("SELECT " + correct_sql("$p", "$t", r), {"p": p, "t": t}).fetchone()[0]
                  for p, t, r in cases]))
"""


def test_what_counts_as_correct(project: Path) -> None:
    """Numbers compare as numbers, text trimmed; a ranked list is right when its first item is relevant."""
    assert py(project, CORRECT) == [True, False, True, True, False, False, False]


def test_report_macro_f1_matches_sklearn(report_data) -> None:
    from sklearn.metrics import f1_score

    _, data = report_data
    for name, right, failed in (("a", A_RIGHT, set()), ("c", C_RIGHT, {38, 39})):
        truth = [i % 3 for i in range(40) if i not in failed]
        pred = [i % 3 if i in right else (i + 1) % 3 for i in range(40) if i not in failed]
        extra = by_label(data)[name]["extra"]
        f1, interval = extra["f1_macro"]
        assert f1 == pytest.approx(f1_score(truth, pred, average="macro"))
        assert interval[0] < f1 < interval[1]
    assert "precision_macro" not in by_label(data)["a"]["extra"]  # not chosen by the default answers


BUILD_REGRESSION = """
import dataclasses, json, sys
from pathlib import Path
from bench_harness import _report as report
from bench_harness._core.config import load_config
data = report.build(dataclasses.replace(load_config(), kind="regression", quality="mae"), Path(sys.argv[1]))
print(json.dumps(dataclasses.asdict(data)))
"""


def test_regression_report_uses_absolute_errors(project: Path, report_data) -> None:
    """kind=regression: MAE per configuration and segment with bootstrap intervals, paired mean differences."""
    db, _ = report_data
    data = py(project, BUILD_REGRESSION, str(db))
    errors = {
        name: np.array([0.0 if i in right else abs((i + 1) % 3 - i % 3) for i in range(40) if i not in failed])
        for name, right, failed in (("a", A_RIGHT, set()), ("b", B_RIGHT, set()), ("c", C_RIGHT, {38, 39}))
    }
    assert data["quality_name"] == "mae" and not data["higher_is_better"]
    for name, c in by_label(data).items():
        assert c["mae"] == pytest.approx(errors[name].mean())
        assert c["mae_ci"][0] <= c["mae"] <= c["mae_ci"][1]
    ab = next(p for p in data["pairs"] if (p["a"], p["b"]) == ("model_name=a", "model_name=b"))
    assert ab["difference"] == pytest.approx(errors["a"].mean() - errors["b"].mean()) and ab["p_mcnemar"] is None
    hard_a = next(c for c in data["segments"]["difficulty"] if c["segment"] == "hard" and c["config"] == "model_name=a")
    assert hard_a["value"] == pytest.approx(errors["a"][25:].mean()) and hard_a["ci"] is not None
