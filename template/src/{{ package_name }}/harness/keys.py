"""Content-based cache keys that are the same in every process.

Template-owned. xetrack's own key is `hash()` of the arguments: a dict item disables it, and a
dataclass with `str` fields gets a new key in every process (Python salts `hash(str)`), and the
function's source is not part of it. Here every part is a sha256 of canonical JSON:

    cache_key = sha256(code_version | config_id | input_id | input_digest)

so editing predict() (or bumping PREDICT_VERSION), changing a parameter or changing an input's
content all invalidate exactly the affected rows, and nothing else does.
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
    """Identity of an input's content, so an edited item with the same id is recomputed."""
    return hashlib.sha256(canonical_json(item).encode("utf-8")).hexdigest()[:16]


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


def cache_key(code: str, config: str, input_id: Any, item_digest: str) -> str:
    """The key a computed row is found by in later runs.

    Its parts are hex digests and an id joined by a separator none of them contains, so plain
    concatenation is unambiguous, and keying 20,000 tasks costs milliseconds, not a JSON encode each.
    """
    text = f"{code}\x1f{config}\x1f{input_id}\x1f{item_digest}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
