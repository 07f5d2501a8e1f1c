"""`bench compare` (`make compare`): two experiments, what changed, what moved, and a CI gate.

Template-owned. Exit codes: 0 nothing regressed significantly, 1 a gated metric regressed by more
than --max-drop, 2 a usage or data error (unknown version, missing database).
"""

from __future__ import annotations

import argparse
import json
import re
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


TARGETS = (0.10, 0.05, 0.02, 0.01)
PLAN_FILE = "EXPERIMENT_PLAN.md"
PLAN_BLOCK = re.compile(r"(<!-- power:begin -->\n).*?(<!-- power:end -->)", re.DOTALL)


def design_lines(n_items: int, accuracy: float | None) -> list[str]:
    """The design-phase power statement: the smallest detectable difference now, the items targets need."""
    from .._results import stats

    # A few dev items say little about the accuracy: plan with it only away from 0 and 1, else cautiously.
    usable = accuracy is not None and 0.1 <= accuracy <= 0.9
    sd = stats.design_sd(accuracy if usable else None)
    basis = f"sd = √(2·p·(1−p)) = {sd:.3f} at dev accuracy p = {accuracy:.2f}" if usable else "cautious sd = √0.5"
    smallest = stats.min_detectable_difference(n_items, sd)
    needs = ", ".join(f"{t:g} → {stats.items_needed(t, sd):,}" for t in TARGETS)
    return [
        f"Power (80%, α = 0.05, paired, {basis}): with the {n_items:,} items of the dataset, two configurations "
        f"must differ by at least {smallest:.3f} in accuracy to be told apart.",
        f"Items a target difference needs: {needs}.",
    ]


def update_plan(root: Path, lines: list[str]) -> bool:
    """Rewrite EXPERIMENT_PLAN.md's power block (between its markers) with `lines`; False when absent."""
    plan = root / PLAN_FILE
    if not plan.exists():
        return False
    text = plan.read_text(encoding="utf-8")
    updated = PLAN_BLOCK.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text, count=1)
    if updated != text:
        plan.write_text(updated, encoding="utf-8")
    return updated != text


def design_note(cfg: BenchConfig, rows: list[dict]) -> list[str]:
    """For `make dev`: the power statement for the whole dataset, also written into EXPERIMENT_PLAN.md."""
    if "accuracy" not in cfg.metrics:
        return []
    try:
        from .._run.runner import user_modules

        _, _, data = user_modules()
        n_items = sum(1 for _ in data.load_items())  # load_items() may yield
    except Exception:  # noqa: BLE001 - a note must never fail the dev run
        return []
    values = [r["accuracy"] for r in rows if isinstance(r.get("accuracy"), (int, float))]
    lines = design_lines(n_items, max(values) if values else None)
    if n_items and update_plan(cfg.root, lines):
        lines.append(f"(written to {PLAN_FILE})")
    return lines if n_items else []
