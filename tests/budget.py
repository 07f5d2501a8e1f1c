"""How many examples a property test draws: all of them in `make test` (CI), a fifth in `make test-fast`.

The development loop (`make test-fast`, PROPERTY_BUDGET=dev) keeps every property test but draws fewer
examples; CI draws the full number. The examples are derandomized (conftest's "ci" profile), so both
tiers draw the same first examples.
"""

from __future__ import annotations

import os


def examples(full: int) -> int:
    """`full` examples, or a fifth of them (at least 5) when PROPERTY_BUDGET=dev."""
    if os.environ.get("PROPERTY_BUDGET") == "dev":
        return max(5, full // 5)
    return full
