"""Loading the dataset. YOURS: point it at your data.

The bundled sample is scikit-learn's wine dataset (178 real wines, 13 measurements, 3
cultivars) with a fixed train/test split: the models are fitted on `split == "train"` and the
benchmark predicts every `split == "test"` item. Every item needs a unique, stable `input_id`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from bench_harness import dataset

FEATURES = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
)


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    """The items to benchmark (the test split), in a stable order."""
    items = [dict(r) for r in dataset() if r.get("split", "test") == "test"]
    return items[:limit]  # limit=None: all of them


@lru_cache(maxsize=1)
def load_training_set() -> tuple[np.ndarray, np.ndarray]:
    """Features and labels the models are fitted on."""
    train = [r for r in dataset() if r.get("split") == "train"]
    features = np.asarray([[float(r[name]) for name in FEATURES] for r in train])
    labels = np.asarray([int(r["label"]) for r in train])
    return features, labels
