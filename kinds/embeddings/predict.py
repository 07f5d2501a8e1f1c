"""predict(): one retrieval of one configuration for one query. YOURS: edit freely.

Return the top document and the raw output (the ranked ids and their scores, so recall@k and MRR
can be recomputed at any k without re-running), or raise: the harness records the row, adding
input_id, the relevant ids (ground truth), the latency, the error and the segmentation fields.
Of the query vector it keeps its norm and a hash (dedup, drift across model versions); the vector
itself only when SAVE_VECTORS is True (it is large). Two encoders, one interface:

* `hashing`: a lexical baseline, word and character-trigram counts hashed into buckets;
* `minilm`: all-MiniLM-L6-v2 run with numpy by the harness (`load_minilm`, weights checked);
* `minilm-st`: the same files run by sentence-transformers (torch), after
  `uv sync --extra sentence-transformers` (add it to params.py's model_name values).

Editing this file invalidates the cached results of every configuration (the cache key includes
a digest of this file), unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import hashlib
import re
import time
from functools import lru_cache
from typing import Any

import numpy as np

from bench_harness import INVALID_VALUE, MISSING_FIELD, BenchmarkError, load_minilm

from .data import load_corpus
from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None
SAVE_VECTORS = False  # True stores each query vector in the `embedding` column (JSON)


def hashing_encode(texts: list[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed hashing of words and their trigrams (sha1: the same in every process); (unit vectors, norms)."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        words = re.findall(r"[a-z0-9]+", text.lower())
        for feature in words + [f"#{w[i : i + 3]}" for w in (f"<{w}>" for w in words) for i in range(len(w) - 2)]:
            digest = hashlib.sha1(feature.encode("utf-8")).digest()
            vectors[row, int.from_bytes(digest[:8], "little") % dim] += 1.0 if digest[8] & 1 else -1.0
    vectors = np.sign(vectors) * np.log1p(np.abs(vectors))  # sublinear counts
    norms = np.linalg.norm(vectors, axis=1)
    return (vectors / np.maximum(norms, 1e-12)[:, None]).astype(np.float32), norms


def encode(texts: list[str], params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors and their norms before normalisation, with the configured encoder."""
    if params.model_name == "hashing":
        return hashing_encode(texts, params.hashing_dim)
    if params.model_name == "minilm":
        return load_minilm().encode(texts)
    if params.model_name == "minilm-st":
        return load_minilm("sentence-transformers").encode(texts)
    raise BenchmarkError(f"unknown model_name {params.model_name!r}: use hashing, minilm or minilm-st", INVALID_VALUE)


@lru_cache(maxsize=8)
def corpus_index(params: Params) -> tuple[tuple[str, ...], np.ndarray]:
    """Document ids and vectors, encoded once per configuration per process."""
    corpus = load_corpus()
    if not corpus:
        raise BenchmarkError("the data holds no documents (records with record == 'document')", MISSING_FIELD)
    return tuple(doc_id for doc_id, _ in corpus), encode([text for _, text in corpus], params)[0]


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Rank the corpus for one query: the top document, with the ranking and its scores as raw output."""
    text = item.get("query")
    if not isinstance(text, str) or not text.strip():
        raise BenchmarkError("the item has no query text", MISSING_FIELD)
    doc_ids, documents = corpus_index(params)  # encoded on the first call: not part of the latency
    started = time.perf_counter()
    vectors, norms = encode([text], params)
    scores = documents @ vectors[0]
    order = np.argsort(-scores, kind="stable")[: params.top_k]
    latency = time.perf_counter() - started
    ranking = [doc_ids[i] for i in order]
    return {
        "prediction": ranking[0],
        "raw_response": {"ranking": ranking, "scores": [round(float(scores[i]), 6) for i in order]},
        "latency": latency,
        "embedding_norm": float(norms[0]),
        "embedding_hash": hashlib.sha256(vectors[0].tobytes()).hexdigest()[:16],
        "embedding_dim": int(vectors.shape[1]),
        **({"embedding": [round(float(v), 6) for v in vectors[0]]} if SAVE_VECTORS else {}),
    }
