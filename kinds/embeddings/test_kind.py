"""The embedding models of predict.py give real, stable vectors. YOURS.

all-MiniLM-L6-v2 runs with numpy (bench_harness.load_minilm): its similarities must be the ones
sentence-transformers publishes for it (0.755 for the food/bread pair of its documentation), or
the port is wrong. Its files are checked against the published model's sha256 when loaded.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bench_harness import load_minilm

PACKAGE = tomllib.loads((Path(__file__).resolve().parents[1] / "benchmark.toml").read_text())["project"]["package"]
predict_module = importlib.import_module(f"{PACKAGE}.predict")

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "A monkey is playing drums."]


def test_minilm_reproduces_sentence_transformers_similarities() -> None:
    vectors, norms = load_minilm().encode(SENTENCES)
    similarity = vectors @ vectors.T
    assert vectors.shape == (3, 384) and np.all(norms > 0)
    assert similarity[0, 1] == pytest.approx(0.755, abs=0.01)
    assert abs(similarity[0, 2]) < 0.2 and abs(similarity[1, 2]) < 0.2


def test_hashing_vectors_are_unit_length_and_the_same_in_every_call() -> None:
    first, _ = predict_module.hashing_encode(SENTENCES, 256)
    again, _ = predict_module.hashing_encode(SENTENCES, 256)
    assert np.array_equal(first, again)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert (first @ first.T)[0, 1] > (first @ first.T)[0, 2], "shared words make texts closer"
