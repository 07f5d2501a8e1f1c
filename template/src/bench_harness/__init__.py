"""The benchmark harness: template-owned, updated by `copier update`. Do not edit here.

This module is the harness's only public API. Your files (params.py, predict.py, data.py,
scoring.py, your tests) import from `bench_harness` and from nothing below it: everything in the
underscored sub-packages may move in any release, this list of names does not.

    from bench_harness import BenchmarkError, INVALID_VALUE, dataset

`predict_row(item, params)` returns the row the harness records for one call of your predict()
(for your tests). Heavy parts (the HTTP clients, the local stand-in servers, the embedding model
`load_minilm`) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._core.config import BenchConfig, load_config, project_root
from ._core.datafiles import dataset, read_records, write_records
from ._core.errors import (
    ALL_CATEGORIES,
    API_TIMEOUT,
    CLIENT_ERROR,
    CONNECTION_ERROR,
    INVALID_VALUE,
    MISSING_FIELD,
    PARSE_ERROR,
    RATE_LIMIT,
    SERVER_ERROR,
    TIMEOUT,
    TRANSIENT,
    UNKNOWN,
    BenchmarkError,
    classify_exception,
    describe,
    is_transient,
)
from ._core.segments import input_length, segment_fields

# Names whose module is imported only when first used: {name: (module, attribute)}.
_LAZY: dict[str, tuple[str, str]] = {
    # results as DataFrames (notebooks, scripts): read-only through DuckDB
    "experiment_versions": ("._results.frames", "experiment_versions"),
    "load_metrics": ("._results.frames", "load_metrics"),
    "load_predictions": ("._results.frames", "load_predictions"),
    "sql": ("._results.frames", "sql"),
    # the OpenAI-compatible chat client (llm kind): built on the `openai` package
    "ChatClient": ("._clients.openai_chat", "ChatClient"),
    "ChatEndpoint": ("._clients.openai_chat", "Endpoint"),
    "chat_client": ("._clients.openai_chat", "chat_client"),
    "chat_completion": ("._clients.openai_chat", "chat_completion"),
    "chat_endpoint_identity": ("._clients.openai_chat", "endpoint_identity"),
    "LocalLLMServer": ("._clients.llm_server", "LocalLLMServer"),
    "local_llm_url": ("._clients.llm_server", "local_llm_url"),
    # the load generator and the local service (throughput kind)
    "HttpTarget": ("._clients.load", "HttpTarget"),
    "burst": ("._clients.load", "burst"),
    "burst_error_type": ("._clients.load", "failure_category"),
    "load_target_url": ("._clients.load", "target_url"),
    "load_target_identity": ("._clients.load", "target_identity"),
    "LocalService": ("._clients.load_server", "LocalService"),
    "local_service_url": ("._clients.load_server", "local_service_url"),
    "service_work": ("._clients.load_server", "handle"),
    # secrets: what every stored message goes through
    "redact": ("._core.secrets", "redact"),
    # the row as the harness records it; the embedding model (embeddings kind)
    "predict_row": ("._run.envelope", "predict_row"),
    "MiniLM": ("._clients.minilm", "MiniLM"),
    "load_minilm": ("._clients.minilm", "load_minilm"),
}

__all__ = [
    "ALL_CATEGORIES",
    "API_TIMEOUT",
    "BenchConfig",
    "BenchmarkError",
    "CLIENT_ERROR",
    "CONNECTION_ERROR",
    "INVALID_VALUE",
    "MISSING_FIELD",
    "PARSE_ERROR",
    "RATE_LIMIT",
    "SERVER_ERROR",
    "TIMEOUT",
    "TRANSIENT",
    "UNKNOWN",
    "classify_exception",
    "dataset",
    "describe",
    "input_length",
    "is_transient",
    "load_config",
    "project_root",
    "read_records",
    "segment_fields",
    "write_records",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Load a heavy public name (a client, a server, a model) the first time it is asked for."""
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module, __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bench_harness' has no attribute {name!r}")
