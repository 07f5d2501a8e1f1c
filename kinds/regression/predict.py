"""predict(): one prediction of one configuration on one item. YOURS: edit freely.

Return the prediction and the raw output, or raise: the harness records the row, adding
input_id, the ground truth (benchmark.toml `[data] ground_truth`), the latency, the error and
its category, and the segmentation fields. For a regression model the raw output is the value,
its uncertainty when the model has one (the spread of a random forest's trees) and the features
the model was given. `bench_harness.predict_row(item, params)` shows the row as recorded.

Editing this file invalidates the cached results of every configuration (the cache key includes
a digest of this file), unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np

from bench_harness import INVALID_VALUE, MISSING_FIELD, BenchmarkError

from .data import FEATURES, load_training_set
from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None


def make_model(params: Params) -> Any:
    """The scikit-learn estimator a configuration stands for (scikit-learn is imported here, when the first
    model is built: a run whose every row is cached, or `make experiment` with nothing changed, never loads it)."""
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if params.model_name == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=params.alpha))
    if params.model_name == "random_forest":
        # 50 trees: per-tree spread is a usable uncertainty and a single-row predict stays fast.
        return RandomForestRegressor(n_estimators=50, min_samples_leaf=5, random_state=params.seed)
    if params.model_name == "mean_baseline":
        return DummyRegressor(strategy="mean")
    raise BenchmarkError(f"unknown model_name {params.model_name!r}", INVALID_VALUE)


@lru_cache(maxsize=32)
def fitted_model(params: Params) -> Any:
    """Fit once per configuration per process (the training split never changes within a run)."""
    return make_model(params).fit(*load_training_set())


def feature_vector(item: dict[str, Any]) -> np.ndarray:
    """The item's features in training order; a missing or non-numeric one is a data error."""
    missing = [name for name in FEATURES if item.get(name) is None]
    if missing:
        raise BenchmarkError(f"missing feature(s): {', '.join(missing)}", MISSING_FIELD)
    try:
        return np.asarray([[float(item[name]) for name in FEATURES]])
    except (TypeError, ValueError) as error:
        raise BenchmarkError(f"non-numeric feature: {error}", INVALID_VALUE) from error


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Predict one item's target, with the ensemble's spread when the model has members."""
    model = fitted_model(params)  # fitted on the first call: not part of the latency below
    features = feature_vector(item)
    started = time.perf_counter()
    value = float(model.predict(features)[0])
    latency = time.perf_counter() - started
    # The spread is extra work, measured apart from the prediction's latency.
    members = getattr(model, "estimators_", None)
    spread = float(np.std([member.predict(features)[0] for member in members])) if members else None
    raw_features = dict(zip(FEATURES, features[0].tolist(), strict=True))
    return {
        "prediction": value,
        "raw_response": {"value": value, "prediction_std": spread, "raw_features": raw_features},
        "latency": latency,
        "prediction_std": spread,
    }
