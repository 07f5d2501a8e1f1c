"""Cache identity: what makes a recorded row the answer to a task, the same in every process and release.

Template-owned. xetrack's own key is `hash()` of the arguments: a dict item disables it, and a
dataclass with `str` fields gets a new key in every process (Python salts `hash(str)`), and the
function's source is not part of it. Here a task is identified by three stable components, each
stored in its own column on every row:

    code_version   the user's predict code: "v:<PREDICT_VERSION>" or "src:<sha256 of predict.py>",
                   + "+ctx:<digest>" when predict.py defines CACHE_CONTEXT (e.g. the endpoint's URL
                   and model: another endpoint gives other answers)
    config_id      the configuration: sha256 of its field names and values
    input_digest   the input's content, its id included: sha256 of the item's canonical JSON

The cache matches rows by these components, never by the `cache_key` string, so a release that
only changes the key's format keeps every cached row (issue 13: one did, and every row was
recomputed). `cache_key` is still written on every row, for people and for xetrack-style queries:

    cache_key = sha256(code_version, config_id)[:16] + input_digest

Each row also records `cache_key_version` (KEY_VERSION): the definition of the components it was
recorded under. Key formats so far (rows of versions 1 and 2 have no such column; their
components are defined exactly as today's, so they are matched as LEGACY_KEY_VERSION):

    1  template v0.1.0   cache_key = sha256(code_version \x1f config_id \x1f input_id \x1f input_digest)[:32]
    2  template v0.2.0   cache_key = sha256(code_version, config_id)[:16] + input_digest
    3  since v0.3.0      as 2, with the components' definition versioned on every row

A release that must change what a component means (so old rows can no longer be trusted) bumps
KEY_VERSION and lists the old version in INVALIDATED with the reason: the next run then says how
many of its tasks that invalidates, and refuses to recompute them without `--recompute-stale`.
tests/test_keys.py holds golden values: any change to a key fails it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from types import ModuleType
from typing import Any

# The definition of the cache identity that new rows are recorded under (column `cache_key_version`).
KEY_VERSION = 3
# Rows without the column: recorded by v0.1.0 or v0.2.0, whose components are today's.
LEGACY_KEY_VERSION = 2
# Identity versions whose rows are no longer valid cache hits: {version: why}. Empty: no release so
# far has changed what a component means.
INVALIDATED: dict[int, str] = {}
# The optional callable in predict.py whose JSON-able result is part of the code's identity.
CONTEXT_HOOK = "CACHE_CONTEXT"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(value, 0))
    return _ENCODER.encode(value)


def _fallback(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return params_dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return repr(value)


# One encoder for every call: json.dumps() with options builds a new encoder each time, which
# is a third of the cost of keying a task.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_fallback, ensure_ascii=False)
# The same encoding, straight from json's C encoder: `JSONEncoder.encode` builds a new C encoder at
# every call, which is most of the cost of digesting a small item. Same text, so the same digests.
_C_ENCODE = (
    c_make_encoder(None, _fallback, encode_basestring, None, ":", ",", True, False, True) if c_make_encoder else None
)


def digest(*parts: Any, length: int = 16) -> str:
    """Hex sha256 of the canonical JSON of `parts`, shortened to `length` characters."""
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()[:length]


def params_dict(params: Any) -> dict[str, Any]:
    """The dataclass's fields as a plain dict (field order kept)."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def config_id(params: Any) -> str:
    """Identity of a configuration: its field names and values, not the class or the process."""
    return digest(params_dict(params))


def input_digest(item: dict[str, Any]) -> str:
    """Identity of an input's content (its id included), so an edited item with the same id is recomputed."""
    return hashlib.sha256(canonical_json(item).encode("utf-8")).hexdigest()[:16]


def input_digests(items: list[dict[str, Any]]) -> list[str]:
    """`input_digest` of every item: the same text, computed in one loop (a run keys every input)."""
    if _C_ENCODE is None:
        return list(map(input_digest, items))
    encode, sha256 = _C_ENCODE, hashlib.sha256
    return [sha256("".join(encode(item, 0)).encode("utf-8")).hexdigest()[:16] for item in items]


def code_version(module: ModuleType) -> str:
    """The code half of the identity: `PREDICT_VERSION` or a digest of the module's source, + its context.

    A module without CACHE_CONTEXT gets exactly the code version of v0.1.0 and v0.2.0, so their
    rows stay cache hits.
    """
    explicit = getattr(module, "PREDICT_VERSION", None)
    if explicit:
        version = f"v:{explicit}"
    else:
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            source = getattr(module, "__name__", "unknown")
        version = "src:" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
    context = getattr(module, CONTEXT_HOOK, None)
    return version if context is None else f"{version}+ctx:{context_digest(context)}"


def context_digest(context: Any) -> str:
    """Digest of what CACHE_CONTEXT returns (called once per run), e.g. {"base_url": ..., "model": ...}.

    Only the digest is stored (the context may hold things that do not belong in a database). It
    must be plain JSON: a value without a stable text (an object's repr holds its address) would
    make a new identity in every process.
    """
    value = context() if callable(context) else context
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        message = f"{CONTEXT_HOOK}() must return a JSON-able dict (it is part of the cache identity): {error}"
        raise TypeError(message) from error
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def identity(config: str, item_digest: str) -> str:
    """A task's identity within one code version: config_id + input_digest (both 16 hex characters).

    What the cache matches on (SQL builds the same text: `config_id || input_digest`).
    """
    return config + item_digest


def row_key_version(value: Any) -> int:
    """The identity version a stored row was recorded under (NULL: a v0.1.0 or v0.2.0 row)."""
    return LEGACY_KEY_VERSION if value is None else int(value)


def key_prefix(code: str, config: str) -> str:
    """The half of every cache key that one configuration's tasks share."""
    return digest(code, config)


def cache_keys(code: str, config: str, item_digests: list[str]) -> list[str]:
    """The keys one configuration's computed rows are found by in later runs, one per input digest.

    Each is the prefix of (code, configuration) + the input digest: both halves are 16 hex
    characters of a sha256, so the key is 32 characters and unambiguous.
    """
    prefix = key_prefix(code, config)
    return [prefix + item_digest for item_digest in item_digests]
