"""Loading the dataset. YOURS: point it at your data.

The bundled sample is scikit-learn's diabetes dataset (442 real patients, 10 baseline
measurements in their original units, disease progression one year later as the target) with a
fixed train/test split: the models are fitted on `split == "train"` and the benchmark predicts
every `split == "test"` item. Every item needs a unique, stable `input_id`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from bench_harness import dataset

# age (years), sex (1/2), body mass index, mean blood pressure, six blood serum measurements
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
TARGET = "target"


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    """The items to benchmark (the test split), in a stable order."""
    items = [dict(r) for r in dataset() if r.get("split", "test") == "test"]
    return items[:limit]  # limit=None: all of them


@lru_cache(maxsize=1)
def load_training_set() -> tuple[np.ndarray, np.ndarray]:
    """Features and targets the models are fitted on."""
    train = [r for r in dataset() if r.get("split") == "train"]
    features = np.asarray([[float(r[name]) for name in FEATURES] for r in train])
    targets = np.asarray([float(r[TARGET]) for r in train])
    return features, targets
