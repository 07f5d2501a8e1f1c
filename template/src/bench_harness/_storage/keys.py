"""Content-based cache keys that are the same in every process.

Template-owned. xetrack's own key is `hash()` of the arguments: a dict item disables it, and a
dataclass with `str` fields gets a new key in every process (Python salts `hash(str)`), and the
function's source is not part of it. Here every part is a sha256 of canonical JSON:

    cache_key = sha256(code_version, config_id)[:16] + sha256(item)[:16]

so editing predict() (or bumping PREDICT_VERSION), changing a parameter or changing an input's
content all invalidate exactly the affected rows, and nothing else does. The key is computed as
two halves, `digest(code_version, config_id)` + `input_digest`: the first is made once per
configuration, the second once per input (the item includes its id), so keying a task costs a
string concatenation instead of a third hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from types import ModuleType
from typing import Any


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
    """`PREDICT_VERSION` when the module sets it, else a digest of the module's source."""
    explicit = getattr(module, "PREDICT_VERSION", None)
    if explicit:
        return f"v:{explicit}"
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = getattr(module, "__name__", "unknown")
    return "src:" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


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
