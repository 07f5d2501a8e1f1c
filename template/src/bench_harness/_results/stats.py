"""Statistics for the report: confidence intervals, paired tests, multiple comparisons, Pareto.

Template-owned. Plain numpy (no scipy in the generated project), and every method is chosen so it
still runs in seconds on a million rows:

* proportions (accuracy, error rate): the Wilson score interval, which stays inside [0, 1] and
  keeps its coverage at small n and near 0 or 1, unlike p ± 1.96·SE;
* a paired binary difference (configuration A right, B wrong, ...): resampling input_ids with
  replacement is exactly a multinomial draw over the four outcome counts, so the paired bootstrap
  costs B draws of 3 numbers whatever n is (same distribution as resampling rows, same seed rule);
* a metric computed from a confusion table (macro F1, precision, recall): likewise a multinomial
  draw over the table's cells;
* a mean of a continuous value (latency, cost): a percentile bootstrap over the values when
  n <= BOOTSTRAP_MAX_N, and above that the bootstrap's own large-n limit, mean ± z·sd/√n (the
  bootstrap distribution of a mean has exactly variance sd²/n and is normal at that size);
* a quantile (latency p50/p95/p99): the distribution-free order-statistic interval from the
  binomial distribution of the number of values below the quantile (no resampling at all);
* McNemar's exact test (binomial with p = 1/2 on the discordant pairs) and Holm's step-down
  correction across the pairs.

Every random draw uses a fixed seed (SEED), so a report is reproducible byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

SEED = 20240617
BOOTSTRAP_B = 10_000
BOOTSTRAP_MAX_N = 50_000
Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal
PERCENTILE_METHOD = "linear"  # numpy's default interpolation, stated in the report


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for successes/n; None when n is 0 (no estimate, no interval)."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 (or n) successes the bound is exactly 0 (or 1); rounding would leave 3e-18.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def binom_pmf(n: int, p: float) -> np.ndarray:
    """P(X = k) for k = 0..n, X ~ Binomial(n, p), computed in log space (stable for n = 10^6)."""
    if n == 0:
        return np.ones(1)
    if p <= 0.0 or p >= 1.0:
        pmf = np.zeros(n + 1)
        pmf[0 if p <= 0.0 else n] = 1.0
        return pmf
    k = np.arange(n, dtype=float)
    # log C(n, k+1) - log C(n, k) = log((n - k) / (k + 1)): a cumulative sum gives log C(n, k).
    log_comb = np.concatenate(([0.0], np.cumsum(np.log((n - k) / (k + 1)))))
    ks = np.arange(n + 1, dtype=float)
    log_pmf = log_comb + ks * math.log(p) + (n - ks) * math.log1p(-p)
    pmf = np.exp(log_pmf - log_pmf.max())
    return pmf / pmf.sum()


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return float(min(1.0, binom_pmf(n, p)[: k + 1].sum()))


def binom_ppf(q: float, n: int, p: float) -> int:
    """The smallest k with P(X <= k) >= q (scipy's binom.ppf convention)."""
    cdf = np.cumsum(binom_pmf(n, p))
    # A tiny tolerance so that a cdf equal to q up to rounding counts as reaching it.
    return int(min(n, np.searchsorted(cdf, q - 1e-12, side="left")))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: 2·P(X <= min(b, c)), X ~ Bin(b + c, 1/2), capped at 1."""
    if b + c == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(b, c), b + c, 0.5))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given), monotone and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def percentile(values: np.ndarray, q: float) -> float | None:
    """The q-th percentile (numpy 'linear' interpolation), None for no values."""
    return float(np.percentile(values, q, method=PERCENTILE_METHOD)) if values.size else None


def quantile_ci(values: np.ndarray, q: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval for the q-quantile (0 < q < 1) from order statistics.

    The number of values below the true quantile is Binomial(n, q); with l = ppf(α/2) and
    u = ppf(1 - α/2) + 1 (1-based ranks, clipped to 1..n), [x_(l), x_(u)] covers the quantile
    with probability >= 1 - α. When the rank falls outside 1..n (p99 of fewer than ~300 values) that
    side has no finite bound: -inf or inf.
    """
    n = int(values.size)
    if n == 0:
        return None
    alpha = 1 - confidence
    lower = binom_ppf(alpha / 2, n, q)
    upper = binom_ppf(1 - alpha / 2, n, q) + 1
    ranks = sorted({min(max(lower, 1), n) - 1, min(max(upper, 1), n) - 1})
    ordered = np.partition(values, ranks)
    # A rank beyond the sample means no finite bound on that side (scipy's quantile_test says nan):
    # -inf / inf, rendered "≤ min" / "≥ max", never the smallest or largest value passed off as a bound.
    low = float(ordered[lower - 1]) if lower >= 1 else -math.inf
    high = float(ordered[upper - 1]) if upper <= n else math.inf
    return low, high


def quantile_ci_reliable(n: int, q: float) -> bool:
    """Whether a q-quantile interval is informative: at least 10 values expected above it.

    Below that (n·(1-q) < 10, e.g. p99 with fewer than 1,000 values) the upper end of the
    interval is pinned at the largest values; the report flags such cells instead of hiding them.
    """
    return n * (1 - q) >= 10


def bootstrap_mean_ci(
    values: np.ndarray, b: int = BOOTSTRAP_B, seed: int = SEED, confidence: float = 0.95
) -> tuple[tuple[float, float] | None, str]:
    """Percentile bootstrap interval of the mean, or its large-n normal limit (see module doc)."""
    n = int(values.size)
    if n == 0:
        return None, "none"
    if n == 1:
        return (float(values[0]), float(values[0])), "bootstrap"
    tail = (1 - confidence) / 2 * 100
    if n <= BOOTSTRAP_MAX_N:
        rng = np.random.default_rng(seed)
        means = np.empty(b)
        chunk = max(1, 2_000_000 // n)  # bounded memory: at most ~2M indices at a time
        for start in range(0, b, chunk):
            stop = min(b, start + chunk)
            index = rng.integers(0, n, size=(stop - start, n))
            means[start:stop] = values[index].mean(axis=1)
        low, high = np.percentile(means, [tail, 100 - tail])
        return (float(low), float(high)), "bootstrap"
    mean, sd = float(values.mean()), float(values.std())  # plug-in sd, as the bootstrap uses
    half = Z95 * sd / math.sqrt(n)
    return (mean - half, mean + half), "bootstrap (large-n normal limit)"


def paired_binary_bootstrap(
    both: int, only_a: int, only_b: int, neither: int, b: int = BOOTSTRAP_B, seed: int = SEED
) -> tuple[float, tuple[float, float], float]:
    """Paired bootstrap of accuracy(A) - accuracy(B) over shared inputs.

    Resampling the n shared input_ids with replacement draws the four outcome counts from
    Multinomial(n, observed shares): identical in distribution to resampling rows, at O(B) cost.
    Returns (difference, 95% percentile interval, bootstrap two-sided p = 2·min(P*(Δ<=0), P*(Δ>=0))).
    """
    n = both + only_a + only_b + neither
    if n == 0:
        return 0.0, (0.0, 0.0), 1.0
    rng = np.random.default_rng(seed)
    shares = np.array([only_a, only_b, both + neither], dtype=float) / n
    draws = rng.multinomial(n, shares, size=b)
    deltas = (draws[:, 0] - draws[:, 1]) / n
    low, high = np.percentile(deltas, [2.5, 97.5])
    p = min(1.0, 2.0 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return (only_a - only_b) / n, (float(low), float(high)), p


def macro_scores(
    cells: np.ndarray, truth: np.ndarray, pred: np.ndarray, correct: np.ndarray, n_labels: int
) -> dict[str, np.ndarray]:
    """Macro precision, recall and F1 from cell counts, vectorised over replicates.

    `cells` is (replicates, n_cells) counts; each cell c has a truth label index, a predicted
    label index and whether it counts as correct (metrics.same). Mirrors metrics.per_class: a class
    is averaged when its support (tp + fn) is positive; an empty precision or recall is 0.
    """
    cells = np.atleast_2d(cells).astype(float)
    reps = cells.shape[0]
    tp = np.zeros((reps, n_labels))
    fp = np.zeros((reps, n_labels))
    fn = np.zeros((reps, n_labels))
    for index in range(cells.shape[1]):
        count = cells[:, index]
        if correct[index]:
            tp[:, pred[index]] += count
        else:
            if pred[index] >= 0:
                fp[:, pred[index]] += count
            fn[:, truth[index]] += count
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    support = tp + fn
    used = support > 0
    counted = used.sum(axis=1)
    out = {}
    for name, table in (("precision_macro", precision), ("recall_macro", recall), ("f1_macro", f1)):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(counted > 0, (table * used).sum(axis=1) / np.maximum(counted, 1), np.nan)
    return out


def multinomial_bootstrap(
    counts: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], b: int = 2_000, seed: int = SEED
) -> tuple[float, float] | None:
    """Percentile interval of statistic(cell counts) when the rows behind the counts are resampled."""
    n = int(counts.sum())
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=b)
    values = statistic(draws)
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def pareto_front(quality: Sequence[float | None], cost: Sequence[float | None]) -> list[bool]:
    """Which points are non-dominated: higher quality is better, lower cost is better.

    X dominates Y when X is at least as good on both and strictly better on one. Points with a
    missing coordinate are never on the front.
    """
    points = list(zip(quality, cost, strict=True))
    front = []
    for i, (q, c) in enumerate(points):
        if q is None or c is None:
            front.append(False)
            continue
        dominated = any(
            j != i and q2 is not None and c2 is not None and q2 >= q and c2 <= c and (q2 > q or c2 < c)
            for j, (q2, c2) in enumerate(points)
        )
        front.append(not dominated)
    return front


# -- comparing two experiments on shared inputs, and the power to see a difference ------------------
POWER = 0.80
ALPHA = 0.05


def normal_quantile(q: float) -> float:
    """The q-quantile of the standard normal (statistics.NormalDist: stdlib, exact to 1e-15)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def paired_mean_bootstrap(
    diffs: np.ndarray, b: int = BOOTSTRAP_B, seed: int = SEED
) -> tuple[float, tuple[float, float] | None, float]:
    """Mean of paired differences (head − base per input), its percentile bootstrap interval and p.

    The p-value is the bootstrap's own, 2·min(P*(Δ <= 0), P*(Δ >= 0)), so it is below 0.05
    exactly when the 95% percentile interval excludes 0: the test and its interval never disagree.
    Above BOOTSTRAP_MAX_N the bootstrap distribution of a mean is normal with sd/√n; both come
    from that limit.
    """
    n = int(diffs.size)
    if n == 0:
        return 0.0, None, 1.0
    mean = float(diffs.mean())
    if n > BOOTSTRAP_MAX_N:
        se = float(diffs.std()) / math.sqrt(n)
        if se == 0:
            return mean, (mean, mean), 1.0 if mean == 0 else 0.0
        return mean, (mean - Z95 * se, mean + Z95 * se), math.erfc(abs(mean) / se / math.sqrt(2))
    means = _resampled_means(diffs, b, seed)
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, (float(low), float(high)), _bootstrap_p(means)


def _resampled_means(values: np.ndarray, b: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.empty(b)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, b, chunk):
        stop = min(b, start + chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def _bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p of 'no difference': twice the smaller share of replicates on either side of 0."""
    return min(1.0, 2.0 * min(float(np.mean(replicates <= 0)), float(np.mean(replicates >= 0))))


def paired_statistic_bootstrap(
    base: np.ndarray,
    head: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    b: int = 2_000,
    seed: int = SEED,
) -> tuple[float, tuple[float, float] | None, float]:
    """statistic(head) − statistic(base) over the same resampled inputs (e.g. a latency percentile).

    `statistic` maps a (replicates, n) array to one value per replicate. The inputs are resampled
    once per replicate and both sides take the same draw: the pairing is what makes it narrow.
    """
    n = int(base.size)
    if n == 0:
        return 0.0, None, 1.0
    point = float(statistic(head[None, :])[0] - statistic(base[None, :])[0])
    rng = np.random.default_rng(seed)
    deltas = np.empty(b)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, b, chunk):
        stop = min(b, start + chunk)
        index = rng.integers(0, n, size=(stop - start, n))
        deltas[start:stop] = statistic(head[index]) - statistic(base[index])
    low, high = np.percentile(deltas, [2.5, 97.5])
    return point, (float(low), float(high)), _bootstrap_p(deltas)


def min_detectable_difference(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest true mean paired difference a two-sided test at `alpha` detects with `power`.

    The normal approximation (z_{1-α/2} + z_power)·sd/√n, where sd is the standard deviation of
    the per-input difference. For a proportion compared on the same inputs (McNemar), the
    difference is -1, 0 or +1 per input and sd² = ψ − Δ² ≈ ψ, the share of inputs whose outcome
    differs (discordant): sd = √ψ.
    """
    if n <= 0 or sd <= 0:
        return None
    return (normal_quantile(1 - alpha / 2) + normal_quantile(power)) * sd / math.sqrt(n)


def items_needed(difference: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """How many shared inputs a paired comparison needs to detect `difference` (inverse of the above)."""
    if difference <= 0 or sd <= 0:
        return None
    z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    return math.ceil((z * sd / difference) ** 2)


def design_sd(accuracy: float | None, discordance: float | None = None) -> float:
    """The per-input sd of a paired accuracy difference for planning, before two runs exist.

    With an observed discordant share ψ (two configurations disagreeing on correctness) it is √ψ.
    Without one, two configurations whose errors are independent at accuracy p disagree on a share
    2·p·(1 − p) of the inputs: √(2p(1 − p)), at most √0.5 (p = 0.5), the cautious planning value.
    """
    if discordance is not None and discordance > 0:
        return math.sqrt(discordance)
    p = 0.5 if accuracy is None else min(max(accuracy, 0.0), 1.0)
    return math.sqrt(max(2 * p * (1 - p), 1e-9))
