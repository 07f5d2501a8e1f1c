"""predict(): one prediction of one configuration on one item. YOURS: edit freely.

The guide's single-execution function: stateless, never raises for a bad item, measures its own
latency, and keeps the raw output (every class probability) so scoring can change later without
re-running. The harness calls it once per (item, configuration) and records the returned dict as
one row of the predictions table.

Editing this file invalidates the cached results of every configuration (the cache key includes
a digest of this file), unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .data import FEATURES, load_training_set
from bench_harness import INVALID_VALUE, MISSING_FIELD, BenchmarkError, classify_exception, describe
from bench_harness import segment_fields
from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None


def make_model(params: Params) -> Any:
    """The scikit-learn estimator a configuration stands for."""
    if params.model_name == "logistic_regression":
        classifier = LogisticRegression(C=1.0 / params.regularization, max_iter=5000, random_state=params.seed)
        return make_pipeline(StandardScaler(), classifier)
    if params.model_name == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=params.seed)
    if params.model_name == "most_frequent":
        return DummyClassifier(strategy="most_frequent")
    raise BenchmarkError(f"unknown model_name {params.model_name!r}", INVALID_VALUE)


@lru_cache(maxsize=32)
def fitted_model(params: Params) -> Any:
    """Fit once per configuration per process (the training split never changes within a run)."""
    features, labels = load_training_set()
    return make_model(params).fit(features, labels)


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


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Classify one item; every failure becomes an error row that keeps whatever was produced."""
    row: dict[str, Any] = {
        "input_id": item.get("input_id"),
        "prediction": None,
        "raw_response": None,
        "ground_truth": item.get("label"),
        "latency": None,
        "error": None,
        "error_type": None,
        **segment_fields(item, params=params),
    }
    try:
        model = fitted_model(params)
        features = feature_vector(item)
        started = time.perf_counter()
        probabilities = model.predict_proba(features)[0]
        row["latency"] = time.perf_counter() - started
        classes = [int(c) for c in model.classes_]
        raw = {"classes": classes, "probabilities": [float(p) for p in probabilities]}
        if hasattr(model, "decision_function"):
            raw["logits"] = np.ravel(model.decision_function(features)).astype(float).tolist()
        row["raw_response"] = json.dumps(raw)
        row["raw_probabilities"] = raw["probabilities"]
        row["predicted_prob"] = float(probabilities.max())
        row["prediction"] = classes[int(probabilities.argmax())]
    except Exception as exc:  # noqa: BLE001 - errors are data: record them, never stop the run
        row["error"] = describe(exc)
        row["error_type"] = classify_exception(exc)
    return row
