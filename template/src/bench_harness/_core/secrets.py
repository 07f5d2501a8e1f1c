"""Secrets never reach a file: every text that may hold one is redacted before it is stored or shortened.

Template-owned. An endpoint's error body can echo the API key it was sent, and not always as sent:
JSON-escaped, lower-cased, URL-encoded, or cut short by a length limit. So redaction matches every
one of those forms, character by character (each key character as itself in any case, a JSON
`\\uXXXX` or backslash escape, or a `%XX` URL escape), and any run of at least `PARTIAL_MIN`
consecutive key characters, not only the whole key. It runs BEFORE any truncation: a cut can
turn a whole key (which would match) into a partial one (which a naive filter misses).

Which texts are secrets: the ones registered with `register_secret` (the LLM client registers
its key), and the values of environment variables whose names say they are (`*_API_KEY`,
`*_TOKEN`, `*_SECRET`, `*PASSWORD*`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote

MASK = "***"
# A run of this many consecutive key characters is redacted: long enough not to match ordinary
# words, short enough that what is left of a key (the rest) cannot be guessed.
PARTIAL_MIN = 8
# Shorter values are not treated as secrets (they would match ordinary text everywhere).
SECRET_MIN = 8
SECRET_NAMES = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD)", re.IGNORECASE)

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Treat `value` as a secret in every later `redact()` of this process."""
    if value and len(value) >= SECRET_MIN:
        with _lock:
            _registered.add(value)


def known_secrets() -> tuple[str, ...]:
    """The registered secrets and the secret-looking environment variables' values, longest first."""
    from_env = {value for name, value in os.environ.items() if SECRET_NAMES.search(name) and len(value) >= SECRET_MIN}
    with _lock:
        found = _registered | from_env
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every form of every secret (whole or a long partial) replaced by `***`."""
    if not text:
        return text
    chosen = tuple(s for s in (known_secrets() if secrets is None else secrets) if s and len(s) >= SECRET_MIN)
    for secret in chosen:
        spans = _merged(_windows(secret).finditer(text))
        for start, end in reversed(spans):
            text = text[:start] + MASK + text[end:]
    return text


def shorten(text: str, limit: int = 300, secrets: Iterable[str] | None = None) -> str:
    """Redact, THEN cut to `limit` characters (with an ellipsis): never the other way round."""
    text = redact(" ".join(str(text).split()), secrets)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _char_forms(char: str) -> str:
    """A regex for one key character in any of the forms it can take in text (case is the regex flag)."""
    forms = {re.escape(char)}
    code = ord(char)
    if code < 0x10000:
        forms.add(rf"\\{{1,3}}u{code:04x}")  # JSON \uXXXX, also escaped twice or three times over
    if not char.isalnum():
        forms.add(r"\\{1,3}" + re.escape(char))  # a backslash-escaped character (\/ \" \\)
    encoded = quote(char, safe="")
    forms.add("".join(re.escape(encoded[i : i + 3]) for i in range(0, len(encoded), 3)))  # %XX (UTF-8 bytes)
    forms.add("".join(f"%{byte:02x}" for byte in char.encode("utf-8")))  # %XX even where not needed
    return "(?:" + "|".join(sorted(forms)) + ")"


@lru_cache(maxsize=64)
def _windows(secret: str) -> re.Pattern[str]:
    """Matches (zero-width, so overlapping) where any PARTIAL_MIN consecutive characters of `secret` start.

    Group 1 is the matched text: the union of the overlapping windows is a whole echoed run,
    however long. Linear in the key's length (a long token compiles in milliseconds).
    """
    chars = [_char_forms(c) for c in secret]
    window = min(PARTIAL_MIN, len(secret))
    alternatives = dict.fromkeys("".join(chars[i : i + window]) for i in range(len(secret) - window + 1))
    return re.compile("(?=(" + "|".join(alternatives) + "))", re.IGNORECASE)


def _merged(matches: Iterable[re.Match[str]]) -> list[tuple[int, int]]:
    """The matched windows as non-overlapping (start, end) spans, overlapping or touching ones joined."""
    spans: list[tuple[int, int]] = []
    for match in matches:
        start, end = match.span(1)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans
