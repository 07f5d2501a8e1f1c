"""DVC cache growth of versioned results (issue 16): per-version files against the whole growing database.

    .venv/bin/python benchmarks/dvc_growth.py                  # 20 experiments of 20,000 rows (make benchmark)
    .venv/bin/python benchmarks/dvc_growth.py --experiments 5 --rows 2000

What it does, in one run, with the real DVC (its Python API, in-process: the same `dvc add` the
harness runs, without 60 interpreter start-ups):

1. a working database gains one experiment's rows at a time (a predictions table shaped like the
   harness's: ~30 columns, identifiers, JSON, floats; plus 3 metrics rows), as `make experiment` does;
2. today's design (before issue 16): after each experiment, `dvc add benchmark.db` of the whole
   database in one repository;
3. the new design: after each experiment, its rows exported to results/<version>.db (the harness's
   own exporter, bench_harness._storage.versionfiles) and `dvc add results/<version>.db` in another;
4. for reference, the alternative the new design did not take: the folder results/ as one
   results.dvc (`dvc add results` each time; DVC deduplicates the unchanged files).

It prints the size of each repository's DVC cache after every few experiments and at the end, the
ratio today / new, and exits 1 when the new design is not linear: its cache after N experiments must
stay within 1.5 x N x one experiment's file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template" / "src"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from bench_harness._storage import versionfiles  # noqa: E402

LINEAR_FACTOR = 1.5
PARAMS = ("params_model_name", "params_regularization", "params_seed")
COLUMNS = (
    "track_id TEXT, timestamp TEXT, function_name TEXT, function_time REAL, cache TEXT, input_id TEXT, "
    "prediction INTEGER, raw_response TEXT, ground_truth INTEGER, latency REAL, error TEXT, error_type TEXT, "
    "raw_probabilities TEXT, predicted_prob REAL, difficulty TEXT, retry_count INTEGER, input_digest TEXT, "
    "cache_key TEXT, params_model_name TEXT, params_regularization REAL, params_seed INTEGER, config_id TEXT, "
    "code_version TEXT, cache_key_version INTEGER, experiment_version TEXT, phase TEXT, code_commit TEXT, "
    "git_branch TEXT, git_dirty INTEGER, data_commit TEXT, python_version TEXT, os TEXT, hostname TEXT, packages TEXT"
)


def new_repository(root: Path) -> None:
    """git init + dvc init, analytics off: what a rendered standard project has."""
    from dvc.repo import Repo

    root.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    (root / ".gitignore").write_text("*.db\n")  # as the generated project's .gitignore
    Repo.init(str(root)).close()
    subprocess.run(["git", "config", "--file", ".dvc/config", "core.analytics", "false"], cwd=root, check=True)


def dvc_add(root: Path, target: str) -> None:
    """`dvc add <target>`, its "to track the changes with git" hint (a log line) silenced."""
    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.WARNING)
    with Repo(str(root)) as repo:
        repo.add([str(root / target)])


def cache_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / ".dvc" / "cache").rglob("*") if p.is_file())


def record_experiment(db: Path, version: str, rows: int, rng: random.Random) -> None:
    """One experiment's rows in the working database (distinct content per experiment, as real runs have)."""
    packages = json.dumps({f"package{i}": f"{i}.{i}.0" for i in range(12)})
    configs = ("logistic_regression", "random_forest", "most_frequent")
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS predictions ({COLUMNS})")
        con.execute(
            "CREATE TABLE IF NOT EXISTS metrics (config_id TEXT, params_model_name TEXT, n INTEGER, accuracy REAL, "
            "latency_p50 REAL, experiment_version TEXT, code_commit TEXT)"
        )
        con.execute("CREATE INDEX IF NOT EXISTS ix_v ON predictions (experiment_version, config_id, input_id)")
        values = []
        for i in range(rows):
            model = configs[i % 3]
            label = rng.randint(0, 2)
            values.append(
                (
                    f"{rng.getrandbits(64):016x}",
                    f"2026-01-01 00:00:{i % 60:02d}.{rng.randint(0, 999999):06d}",
                    "predict",
                    rng.random() / 100,
                    "",
                    f"item-{i // 3:06d}",
                    label,
                    str(label),
                    label,
                    rng.random() / 100,
                    None,
                    None,
                    json.dumps([rng.random() for _ in range(3)]),
                    rng.random(),
                    ("easy", "medium", "hard")[i % 3],
                    0,
                    f"{rng.getrandbits(128):032x}",
                    f"{rng.getrandbits(128):032x}",
                    model,
                    1.0,
                    0,
                    f"cfg-{model}",
                    "v1",
                    3,
                    version,
                    "experiment",
                    f"{rng.getrandbits(48):012x}",
                    "main",
                    0,
                    "fb1732d",
                    "3.11.9",
                    "Linux",
                    "host",
                    packages,
                )
            )
        con.executemany(f"INSERT INTO predictions VALUES ({', '.join('?' for _ in range(34))})", values)
        con.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(f"cfg-{m}", m, rows // 3, rng.random(), rng.random(), version, "abc") for m in configs],
        )
    con.close()


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20_000, help="rows each experiment adds")
    parser.add_argument("--no-folder", action="store_true", help="skip the results.dvc folder reference")
    args = parser.parse_args(argv)
    rng = random.Random(16)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dvc-growth-") as tmp:
        today, per_file, folder = Path(tmp) / "today", Path(tmp) / "per-file", Path(tmp) / "folder"
        designs = [today, per_file] + ([] if args.no_folder else [folder])
        for root in designs:
            new_repository(root)
        db = today / "benchmark.db"
        first_file = 0
        print(f"DVC cache after each experiment of {args.rows:,} rows (today: whole benchmark.db; new: results/<v>.db)")
        header = f"{'experiments':>11}  {'db size':>11}  {'today':>11}  {'new':>11}" + (
            "" if args.no_folder else f"  {'folder':>11}"
        )
        print(header)
        for n in range(1, args.experiments + 1):
            version = f"e0.0.{n}"
            record_experiment(db, version, args.rows, rng)
            dvc_add(today, "benchmark.db")
            exported = versionfiles.version_file(per_file / "results", version)
            versionfiles.export_version(db, version, exported)
            first_file = first_file or exported.stat().st_size
            dvc_add(per_file, f"results/{exported.name}")
            if not args.no_folder:
                versionfiles.export_version(db, version, versionfiles.version_file(folder / "results", version))
                dvc_add(folder, "results")
            if n in (1, 2, 5, 10) or n % 10 == 0 or n == args.experiments:
                sizes = [cache_bytes(root) for root in designs]
                print(f"{n:>11}  {mib(db.stat().st_size):>11}  " + "  ".join(f"{mib(s):>11}" for s in sizes))
        sizes = {root.name: cache_bytes(root) for root in designs}
    limit = LINEAR_FACTOR * args.experiments * first_file
    linear = sizes["per-file"] <= limit
    print(
        f"\nafter {args.experiments} experiments: today {mib(sizes['today'])}, new {mib(sizes['per-file'])}: "
        f"today / new = {sizes['today'] / sizes['per-file']:.1f}x"
        + ("" if args.no_folder else f"; folder as one results.dvc {mib(sizes['folder'])}")
    )
    print(
        f"linear: new cache {mib(sizes['per-file'])} <= {LINEAR_FACTOR} x {args.experiments} x one experiment's file "
        f"({mib(first_file)}) = {mib(limit)}: {'met' if linear else 'MISSED'}   ({time.monotonic() - started:.0f} s)"
    )
    return 0 if linear else 1


if __name__ == "__main__":
    sys.exit(main())
