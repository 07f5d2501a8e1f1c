"""`bench compare` (`make compare`): two experiments, what changed, what moved, and a CI gate.

Template-owned. Exit codes: 0 nothing regressed significantly, 1 a gated metric regressed by more
than --max-drop, 2 a usage or data error (unknown version, missing database).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._core.config import BenchConfig


def cmd_compare(args: argparse.Namespace, cfg: BenchConfig) -> int:
    """Compare two experiments (default: the latest with the one before): attribution, paired differences, gate."""
    from .._compare.model import CompareError, compare, to_json
    from .._report.comparison import markdown

    if args.max_drop < 0:
        print("compare: --max-drop is a tolerance, 0 or more", file=sys.stderr)
        return 2
    try:
        comparison = compare(cfg, args.base or None, args.head or None, args.max_drop)
    except CompareError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    print(markdown(comparison))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(comparison), indent=2, default=str), encoding="utf-8")
        print(f"comparison written to {path}")
    return comparison.exit_code


def add_parser(sub: argparse._SubParsersAction, commands: dict) -> None:
    commands["compare"] = cmd_compare
    p = sub.add_parser("compare", help=cmd_compare.__doc__)
    p.add_argument("--base", default=None, help="the earlier experiment (default: the one before --head)")
    p.add_argument("--head", default=None, help="the later experiment (default: the latest)")
    p.add_argument("--max-drop", type=float, default=0.0, help="tolerated significant drop, e.g. 0.01")
    p.add_argument("--json", default=None, metavar="FILE", help="write the whole comparison as JSON (for CI)")
