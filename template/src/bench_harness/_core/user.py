"""The user's own modules (params, predict, data, scoring), found through benchmark.toml.

The harness is a fixed-name package beside the user's; it never imports the user's package by a
relative path, so a release can move harness modules without touching user files.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .config import CONFIG_FILE, load_config, project_root

# benchmark.toml's package by (file, its mtime and size): a run asks for each user module, and parsing
# the TOML each time was a few ms of a cached re-run. An edited file is read again.
_PACKAGES: dict[tuple[str, int, int], str] = {}


def user_package() -> str:
    """The user's package, as benchmark.toml's [project] package names it."""
    config = project_root() / CONFIG_FILE
    try:
        stat = config.stat()
    except OSError:
        return load_config().package  # its own error names the missing file
    key = (str(config), stat.st_mtime_ns, stat.st_size)
    if key not in _PACKAGES:
        _PACKAGES[key] = load_config(config.parent).package
    return _PACKAGES[key]


def user_module(name: str) -> ModuleType:
    """`<package>.<name>` (params, predict, data, scoring), imported on first use: it may be heavy."""
    return importlib.import_module(f"{user_package()}.{name}")
