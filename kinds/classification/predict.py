"""predict(): one prediction of one configuration on one item. YOURS: edit freely.

Return the prediction and the raw output (here every class probability, so scoring can change
later without re-running), or raise: the harness records the row, adding input_id, the ground
truth, the latency, the error and its category, and the segmentation fields. Check a row as the
harness records it with `bench_harness.predict_row(item, params)`.

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
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    """Classify one item: the most probable class, with every class's probability as raw output."""
    model = fitted_model(params)  # fitted on the first call: not part of the latency below
    features = feature_vector(item)
    started = time.perf_counter()
    probabilities = model.predict_proba(features)[0]
    latency = time.perf_counter() - started
    classes = [int(c) for c in model.classes_]
    raw = {"classes": classes, "probabilities": probabilities.tolist()}
    if hasattr(model, "decision_function"):
        raw["logits"] = np.ravel(model.decision_function(features)).tolist()
    return {
        "prediction": classes[int(probabilities.argmax())],
        "raw_response": raw,  # stored as JSON text
        "latency": latency,
        "raw_probabilities": raw["probabilities"],
        "predicted_prob": float(probabilities.max()),
    }
