"""predict(): one chat completion of one configuration on one item. YOURS: edit freely.

Return the prediction and the raw output, or raise: the harness adds input_id, ground truth,
latency, error and error_type, and the segment fields. `chat_completion` (template-owned, on the
official `openai` package) keeps what an LLM benchmark must save: the raw response,
finish_reason, prompt/completion tokens, the model version the endpoint reports and the cost
priced from pricing.toml (with the prices used: a snapshot). It raises rate limits (with the
server's Retry-After), timeouts and 5xx as transient errors, which the harness retries.

The endpoint comes from the environment only: LLM_BASE_URL (unset: the offline stand-in),
LLM_API_KEY (never stored), LLM_TIMEOUT_SECONDS. The model, the prompt template and the system
prompt's hash are parameters; the endpoint is part of the cache identity (CACHE_CONTEXT).
Editing this file invalidates the cached results (the key includes a digest of this file),
unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bench_harness import INVALID_VALUE, MISSING_FIELD, BenchmarkError, chat_completion, chat_endpoint_identity

from .params import Params
from .scoring import extract_answer, normalise

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None
# What else the answers depend on (the endpoint's base URL): a different endpoint, a different cache.
CACHE_CONTEXT = chat_endpoint_identity

# System prompts are chosen by the sha256 (first 12 hex digits) of their text: the `system_prompt_hash`
# parameter. Editing a prompt changes its hash, so old results can never pass for the new prompt.
SYSTEM_PROMPTS = ("You are a careful assistant. Answer every question with a single word or number, nothing else.",)
# The user message; {question} is the item's question.
PROMPT_TEMPLATES = {
    "direct": "Question: {question}\nReply in the form: The answer is <answer>.",
    "json": 'Question: {question}\nReply with JSON only: an object with one key, "answer".',
}


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


PROMPTS_BY_HASH = {prompt_hash(text): text for text in SYSTEM_PROMPTS}


def build_messages(item: dict[str, Any], params: Params) -> list[dict[str, str]]:
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BenchmarkError("the item has no question", MISSING_FIELD)
    system = PROMPTS_BY_HASH.get(params.system_prompt_hash)
    if system is None:
        known = ", ".join(PROMPTS_BY_HASH)
        raise BenchmarkError(f"no system prompt has hash {params.system_prompt_hash!r} (known: {known})", INVALID_VALUE)
    template = PROMPT_TEMPLATES.get(params.prompt_template)
    if template is None:
        raise BenchmarkError(f"unknown prompt_template {params.prompt_template!r}", INVALID_VALUE)
    return [{"role": "system", "content": system}, {"role": "user", "content": template.format(question=question)}]


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Ask one question; the answer is compared after normalisation (scoring.py)."""
    messages = build_messages(item, params)
    answer = chat_completion(
        params.model_name, messages, temperature=params.temperature, max_tokens=params.max_tokens
    )  # raw_response, finish_reason, model_version, tokens, cost_usd and prices, latency
    return {
        "prediction": extract_answer(answer["raw_response"]),
        "ground_truth": normalise(item["answer"]) if item.get("answer") is not None else None,
        "prompt": messages[-1]["content"],
        **answer,
    }
