"""The harness's own small statistics, cross-checked against scipy and statsmodels on random inputs.

Dev-only: the generated project never imports scipy or statsmodels; the template repo's tests do, so a
change to `_results/stats.py` that drifts from the references fails here (issue 17).
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template" / "src"))

from bench_harness._results import stats  # noqa: E402

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(n=st.integers(1, 5000), share=st.floats(0, 1))
def test_wilson_matches_statsmodels(n: int, share: float) -> None:
    k = round(share * n)
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert stats.wilson(k, n) == pytest.approx((low, high), abs=1e-9)


@FAST
@given(b=st.integers(0, 400), c=st.integers(0, 400))
def test_exact_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    expected = mcnemar([[10, b], [c, 10]], exact=True).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(min(1.0, expected), rel=1e-9, abs=1e-15)


@FAST
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_holm_matches_statsmodels(p: list[float]) -> None:
    with patch("gc.collect", return_value=0):  # multipletests collects garbage: 0.15 s a call in a test process
        expected = multipletests(p, alpha=0.05, method="holm")[1]
    assert stats.holm(p) == pytest.approx(list(expected), abs=1e-12)


@FAST
@given(n=st.integers(1, 2000), p=st.floats(0.01, 0.99), q=st.floats(0.01, 0.99))
def test_binomial_cdf_and_ppf_match_scipy(n: int, p: float, q: float) -> None:
    k = int(q * n)
    assert stats.binom_cdf(k, n, p) == pytest.approx(sps.binom.cdf(k, n, p), rel=1e-7, abs=1e-12)
    ours, expected = stats.binom_ppf(q, n, p), int(sps.binom.ppf(q, n, p))
    # A tie (P(X <= k) == q exactly, e.g. n=255, p=q=0.5): scipy's rounding may step past k; k is right.
    tie = ours == expected - 1 and abs(sps.binom.cdf(ours, n, p) - q) < 1e-9
    assert ours == expected or tie, (ours, expected)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 3000), q=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_percentile_and_its_interval_match_scipy(seed: int, n: int, q: float) -> None:
    values = np.random.default_rng(seed).lognormal(size=n)
    assert stats.percentile(values, q * 100) == pytest.approx(np.percentile(values, q * 100))
    ours = stats.quantile_ci(values, q)
    reference = sps.quantile_test(values, p=q, q=float(np.quantile(values, q))).confidence_interval(0.95)
    if ours is None:
        assert not np.isfinite(reference.high) or not np.isfinite(reference.low)
    else:
        finite = [x for x in (reference.low, reference.high) if np.isfinite(x)]
        assert all(any(np.isclose(x, y) for y in ours) for x in finite), (ours, reference)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(30, 400))
def test_bootstrap_mean_interval_is_close_to_scipy(seed: int, n: int) -> None:
    values = np.random.default_rng(seed).exponential(size=n)
    (low, high), _ = stats.bootstrap_mean_ci(values)
    reference = sps.bootstrap((values,), np.mean, method="percentile", n_resamples=4000, random_state=seed)
    width = reference.confidence_interval.high - reference.confidence_interval.low
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.15 * width)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.15 * width)
