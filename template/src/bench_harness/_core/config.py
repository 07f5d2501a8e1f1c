"""The benchmark's configuration: `benchmark.toml`, rendered by copier from the answers.

Template-owned. Every harness module reads its settings from here, so that changing an answer
(`copier update -d engine=sqlite`) changes behaviour without touching code.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

CONFIG_FILE = "benchmark.toml"


def project_root(start: Path | None = None) -> Path:
    """The folder holding benchmark.toml: $BENCH_ROOT, else the nearest parent of `start` (or cwd)."""
    if env_root := os.environ.get("BENCH_ROOT"):
        return Path(env_root).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    package_dir = Path(__file__).resolve().parents[2]
    for folder in package_dir.parents:
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise FileNotFoundError(f"{CONFIG_FILE} not found above {here}: run from the benchmark project")


@dataclass(frozen=True)
class RunSettings:
    """How an experiment executes (the [run] section)."""

    executor: str = "serial"
    workers: int = 4  # 0: the machine's cores; for threads with adaptive_concurrency, the most in flight
    # A task that has not produced its row after this long becomes a TIMEOUT error row (0: no limit).
    task_timeout_seconds: float = 600.0
    # threads: grow the calls in flight while they succeed, back off on RATE_LIMIT / API_TIMEOUT (AIMD).
    adaptive_concurrency: bool = True
    cache: bool = True
    log_system_params: bool = False
    max_retries: int = 3
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_error_rate: float = 0.5
    min_rows_for_error_stop: int = 50
    write_batch_size: int = 10000
    write_interval_seconds: float = 1.0
    dev_limit: int = 20


# A benchmark.toml rendered before kind manifests has no [analysis] correct/quality: what its kind meant.
LEGACY_SCORING = {"embeddings": ("top1_relevant", "accuracy"), "regression": ("equal", "mae")}


@dataclass(frozen=True)
class BenchConfig:
    """Everything the harness needs to know about this benchmark."""

    root: Path
    name: str
    package: str
    kind: str
    questions: tuple[str, ...]
    data_path: Path
    data_format: str
    db_path: Path
    dev_db_path: Path
    engine: str
    predictions_table: str
    metrics_table: str
    metrics: tuple[str, ...]
    segmentations: tuple[str, ...]
    versioning: str
    dvc_remote: str
    run: RunSettings = field(default_factory=RunSettings)
    # The kind's scoring (kinds/<kind>/kind.yml, rendered into [analysis]): its correctness rule
    # (_results/metrics.yml `correctness`) and the report's headline measure ("accuracy" or "mae").
    correct: str = "equal"
    quality: str = "accuracy"
    ground_truth: str = "label"  # the item field holding the expected answer ([data] ground_truth)

    def for_dev(self) -> BenchConfig:
        """The same benchmark pointed at the development database."""
        return replace(self, db_path=self.dev_db_path)


def load_config(root: Path | None = None) -> BenchConfig:
    """Read benchmark.toml from the project root ($BENCH_DB / $BENCH_DEV_DB override the databases)."""
    root = root or project_root()
    raw = tomllib.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    project, data, db = raw["project"], raw["data"], raw["database"]
    analysis, versioning = raw.get("analysis", {}), raw.get("versioning", {})
    known = RunSettings.__dataclass_fields__
    run = RunSettings(**{k: v for k, v in raw.get("run", {}).items() if k in known})
    return BenchConfig(
        root=root,
        name=project["name"],
        package=project["package"],
        kind=project.get("kind", "classification"),
        questions=tuple(project.get("questions", ())),
        data_path=root / data["path"],
        data_format=data.get("format", "jsonl"),
        db_path=Path(os.environ.get("BENCH_DB") or root / db["path"]),
        dev_db_path=Path(os.environ.get("BENCH_DEV_DB") or root / db.get("dev_path", "dev_" + db["path"])),
        engine=db.get("engine", "sqlite"),
        predictions_table=db.get("predictions_table", "predictions"),
        metrics_table=db.get("metrics_table", "metrics"),
        metrics=tuple(analysis.get("metrics", ())),
        segmentations=tuple(analysis.get("segmentations", ())),
        versioning=versioning.get("level", "minimal"),
        dvc_remote=versioning.get("dvc_remote", ""),
        run=run,
        correct=analysis.get("correct") or LEGACY_SCORING.get(project.get("kind"), ("equal", ""))[0],
        quality=analysis.get("quality") or LEGACY_SCORING.get(project.get("kind"), ("", "accuracy"))[1],
        ground_truth=data.get("ground_truth", "label"),
    )
