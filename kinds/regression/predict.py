"""predict(): one prediction of one configuration on one item. YOURS: edit freely.

The guide's single-execution function: stateless, never raises for a bad item, measures its own
latency, and keeps the raw output so scoring can change later without re-running. For a
regression model the raw output is the predicted value, its uncertainty when the model has one
(the spread of a random forest's trees) and the features the model was given.

Editing this file invalidates the cached results of every configuration (the cache key includes
a digest of this file), unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .data import FEATURES, TARGET, load_training_set
from bench_harness import INVALID_VALUE, MISSING_FIELD, BenchmarkError, classify_exception, describe
from bench_harness import segment_fields
from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None


def make_model(params: Params) -> Any:
    """The scikit-learn estimator a configuration stands for."""
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
    features, targets = load_training_set()
    return make_model(params).fit(features, targets)


def feature_vector(item: dict[str, Any]) -> np.ndarray:
    """The item's features in training order; a missing or non-numeric one is a data error."""
    if "_malformed" in item:
        raise BenchmarkError(item["_malformed"], INVALID_VALUE)
    missing = [name for name in FEATURES if item.get(name) is None]
    if missing:
        raise BenchmarkError(f"missing feature(s): {', '.join(missing)}", MISSING_FIELD)
    try:
        return np.asarray([[float(item[name]) for name in FEATURES]])
    except (TypeError, ValueError) as error:
        raise BenchmarkError(f"non-numeric feature: {error}", INVALID_VALUE) from error


def prediction_spread(model: Any, features: np.ndarray) -> float | None:
    """Standard deviation across an ensemble's members (None for a model without members)."""
    members = getattr(model, "estimators_", None)
    if not members:
        return None
    values = np.asarray([member.predict(features)[0] for member in members])
    return float(values.std())


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Predict one item's target; every failure becomes an error row that keeps what was produced."""
    row: dict[str, Any] = {
        "input_id": item.get("input_id"),
        "prediction": None,
        "raw_response": None,
        "ground_truth": item.get(TARGET),
        "latency": None,
        "error": None,
        "error_type": None,
        "prediction_std": None,
        **segment_fields(item, params=params),
    }
    try:
        model = fitted_model(params)
        features = feature_vector(item)
        started = time.perf_counter()
        value = float(model.predict(features)[0])
        row["latency"] = time.perf_counter() - started
        # The spread is extra work measured apart from the prediction's latency.
        row["prediction_std"] = prediction_spread(model, features)
        raw = {
            "value": value,
            "prediction_std": row["prediction_std"],
            "raw_features": dict(zip(FEATURES, features[0].tolist(), strict=True)),
        }
        row["raw_response"] = json.dumps(raw)
        row["prediction"] = value
    except Exception as exc:  # noqa: BLE001 - errors are data: record them, never stop the run
        row["error"] = describe(exc)
        row["error_type"] = classify_exception(exc)
    return row
