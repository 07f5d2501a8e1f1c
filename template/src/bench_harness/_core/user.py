"""The user's own modules (params, predict, data, scoring), found through benchmark.toml.

The harness is a fixed-name package beside the user's; it never imports the user's package by a
relative path, so a release can move harness modules without touching user files.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .config import load_config


def user_package() -> str:
    """The user's package, as benchmark.toml's [project] package names it."""
    return load_config().package


def user_module(name: str) -> ModuleType:
    """`<package>.<name>` (params, predict, data, scoring), imported on first use: it may be heavy."""
    return importlib.import_module(f"{user_package()}.{name}")
