"""The comparison of two experiments: attribution (what changed) and paired differences (what moved).

Template-owned, layer 4 (git metadata, the DVC cache, DuckDB over the results). Two experiments are
compared on the inputs they share with unchanged content (same input_id, same input_digest): on
those the only thing that differs is the code, the model or the machine, so each input is its own
control and the differences are paired:

* proportions (accuracy, error rate): exact McNemar test on the inputs whose outcome flipped,
  paired bootstrap interval of the difference;
* everything else (latency, absolute error): paired bootstrap of the difference, with the
  bootstrap's own p-value so the test and its interval agree;
* Holm's correction across the whole family (every configuration x metric);
* the smallest difference the shared inputs could detect (80% power, alpha 0.05), so that
  "no detectable change" says how large a change could still hide.

The results databases: the working one when it holds the experiment's rows, else the copy DVC
recorded at the experiment's tag (read from the DVC cache, never downloaded here).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from .._core import env
from .._core.config import BenchConfig
from .._report.model import _prediction_column, correct_sql
from .._results import stats
from .._results.analysis import segment_columns, sqlite_columns
from .._storage import duck
from .._storage.duck import sql_string
from .._storage.store import harness_rows_sql, quote

ALPHA = 0.05
MAX_FLIPS = 50  # flipped inputs listed per comparison (all are counted)
# Metrics whose significant drop fails the gate; latency is reported but depends on the machine.
GATED = ("accuracy", "error_rate", "mae")
LOWER_IS_BETTER = ("error_rate", "mae", "latency_mean", "latency_p50")
TEMPLATE_OWNED = ("src/bench_harness/", "harness.mk", ".github/", "tests/test_harness_")
NOT_CODE = (":(exclude)*.dvc", ":(exclude)reports", ":(exclude)exports", ":(exclude)uv.lock")


class CompareError(Exception):
    """A usage or data problem (unknown version, missing database): exit code 2."""


@dataclass
class Side:
    """One experiment as its rows recorded it."""

    version: str
    db_path: str
    commit: str = ""
    dirty: bool = False
    data_commit: str = ""
    python: str = ""
    machine: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0
    configs: dict[str, str] = field(default_factory=dict)  # config_id -> label
    model_versions: dict[str, str] = field(default_factory=dict)  # label -> model/predict version


@dataclass
class Attribution:
    """What differs between the two experiments, besides the results."""

    files: list[dict[str, Any]] = field(default_factory=list)  # path, added, removed, owner
    data: dict[str, Any] = field(default_factory=dict)
    configs_added: list[str] = field(default_factory=list)
    configs_removed: list[str] = field(default_factory=list)
    model_versions: list[tuple[str, str, str]] = field(default_factory=list)  # (config, base, head)
    dependencies: list[tuple[str, str, str]] = field(default_factory=list)  # (package, base, head)
    template: tuple[str, str] | None = None
    environment: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> list[str]:
        """One line per kind of change, empty when nothing changed."""
        lines = []
        if self.files:
            lines.append(f"code: {len(self.files)} file(s) changed ({', '.join(f['path'] for f in self.files[:5])})")
        if self.data.get("added") or self.data.get("removed") or self.data.get("changed"):
            d = self.data
            lines.append(f"data: {d['added']} input(s) added, {d['removed']} removed, {d['changed']} changed")
        if self.configs_added or self.configs_removed:
            lines.append(f"grid: {len(self.configs_added)} configuration(s) added, {len(self.configs_removed)} removed")
        if self.model_versions:
            lines.append(f"model versions: {len(self.model_versions)} changed")
        if self.dependencies:
            lines.append(f"dependencies: {len(self.dependencies)} package(s) changed")
        if self.template:
            lines.append(f"template release: {self.template[0]} -> {self.template[1]}")
        if self.environment:
            lines.append("environment: " + ", ".join(name for name, _, _ in self.environment))
        return lines


@dataclass
class MetricChange:
    """One configuration x metric: base, head and their paired difference on the shared inputs."""

    config: str
    metric: str
    n_shared: int
    base: float | None
    head: float | None
    difference: float | None
    ci: tuple[float, float] | None
    p: float
    test: str
    lower_is_better: bool
    min_detectable: float | None = None
    p_holm: float = 1.0
    verdict: str = "no detectable change"
    gated: bool = False
    flips: tuple[int, int] | None = None  # (right->wrong, wrong->right) for proportions


@dataclass
class SegmentChange:
    segmentation: str
    segment: str
    config: str
    n_shared: int
    base: float | None
    head: float | None
    difference: float | None
    ci: tuple[float, float] | None


@dataclass
class Flip:
    """An input whose outcome changed between the two experiments, both answers side by side."""

    config: str
    input_id: str
    direction: str  # "right→wrong" or "wrong→right"
    ground_truth: str | None
    base_prediction: str | None
    head_prediction: str | None
    base_raw: str | None
    head_raw: str | None


@dataclass
class Comparison:
    base: Side
    head: Side
    attribution: Attribution
    changes: list[MetricChange]
    segments: list[SegmentChange]
    flips: list[Flip]
    n_flips: int
    n_shared_inputs: int
    max_drop: float
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricChange]:
        """Gated metrics that got significantly worse by more than the tolerance."""
        return [c for c in self.changes if c.gated and c.verdict == "regressed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


# -- which experiments, which databases -----------------------------------------------------------
def db_versions(db_path: Path, table: str) -> list[str]:
    """Experiment versions in a database, in the order they were first written."""
    columns = sqlite_columns(db_path, table)
    if "experiment_version" not in columns:
        return []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        rows = con.execute(
            f"SELECT experiment_version FROM {quote(table)} WHERE {harness_rows_sql(columns)} "
            "GROUP BY 1 ORDER BY MIN(rowid)"
        ).fetchall()
    return [r[0] for r in rows]


def known_versions(cfg: BenchConfig) -> list[str]:
    """Experiment tags (oldest first); the database's versions when git has fewer than two."""
    tags = env.experiment_tags(cfg.root)
    if len(tags) >= 2:
        return tags
    found = db_versions(cfg.db_path, cfg.predictions_table) if cfg.db_path.exists() else []
    return list(dict.fromkeys([*tags, *found]))


def pick_versions(cfg: BenchConfig, base: str | None, head: str | None) -> tuple[str, str]:
    """HEAD defaults to the latest experiment, BASE to the one before HEAD."""
    versions = known_versions(cfg)
    head = head or (versions[-1] if versions else None)
    if head is None:
        raise CompareError("no experiments yet: run `make experiment` twice, then `make compare`")
    if base is None:
        earlier = versions[: versions.index(head)] if head in versions else versions[:-1]
        if not earlier:
            raise CompareError(f"{head} is the first experiment: nothing to compare it with (BASE=e0.0.N picks one)")
        base = earlier[-1]
    return base, head


def dvc_cached_database(cfg: BenchConfig, version: str) -> Path | None:
    """The results DVC recorded at the experiment's tag, if its file is in the local DVC cache: the version's
    own results/<version>.db (issue 16), or the whole database of a tag recorded before that layout."""
    try:
        relative = cfg.db_path.resolve().relative_to(cfg.root.resolve())
    except ValueError:
        return None
    own = relative.parent / "results" / f"{version}.db"
    pointer = env.git_output(cfg.root, "show", f"{version}:{own}.dvc") or env.git_output(
        cfg.root, "show", f"{version}:{relative}.dvc"
    )
    match = re.search(r"md5:\s*([0-9a-f]{32})", pointer or "")
    if not match:
        return None
    md5 = match.group(1)
    cached = cfg.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return cached if cached.is_file() else None


def locate(cfg: BenchConfig, version: str) -> Path:
    """The database holding `version`'s rows: the working one, else DVC's copy at its tag."""
    if cfg.db_path.exists() and version in db_versions(cfg.db_path, cfg.predictions_table):
        return cfg.db_path
    cached = dvc_cached_database(cfg, version)
    if cached and version in db_versions(cached, cfg.predictions_table):
        return cached
    known = ", ".join(known_versions(cfg)) or "none"
    hint = " and not in the DVC cache (`uv run dvc fetch --all-tags` brings it)" if cfg.versioning != "minimal" else ""
    raise CompareError(f"no rows of {version} in {cfg.db_path.name}{hint} (experiments: {known})")


# -- loading one side into DuckDB ---------------------------------------------------------------------
def _load(con: duckdb.DuckDBPyConnection, cfg: BenchConfig, db_path: Path, version: str, name: str) -> list[str]:
    """The version's last row per (configuration, input) as temp table `name`; returns segment columns."""
    table = cfg.predictions_table
    columns = sqlite_columns(db_path, table)
    present = set(columns)
    col = lambda c: quote(c) if c in present else "NULL"  # noqa: E731
    pred = _prediction_column(db_path, table, version, columns)
    p, t = f"CAST({col(pred)} AS VARCHAR)", f"CAST({col('ground_truth')} AS VARCHAR)"
    failed = f"coalesce(CAST({col('error')} AS VARCHAR), '') <> ''"
    segments = [s for s in segment_columns(cfg, columns) if s not in ("config_id", "input_id")]
    extra = "".join(f", CAST({quote(s)} AS VARCHAR) AS {quote('seg_' + s)}" for s in segments)
    con.execute(f"ATTACH {sql_string(str(db_path))} AS {name}_db (TYPE sqlite, READ_ONLY)")
    con.execute("SET sqlite_all_varchar = true")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT config_id, CAST(input_id AS VARCHAR) AS input_id, CAST({col("input_digest")} AS VARCHAR) AS digest,
               {failed} AS failed,
               CASE WHEN {failed} OR {t} IS NULL THEN NULL ELSE {correct_sql(p, t, cfg.correct)} END AS correct,
               CASE WHEN {failed} THEN NULL ELSE abs(TRY_CAST({p} AS DOUBLE) - TRY_CAST({t} AS DOUBLE)) END
                   AS abs_error,
               CASE WHEN {failed} THEN NULL ELSE TRY_CAST({col("latency")} AS DOUBLE) END AS latency,
               {p} AS prediction, {t} AS truth, CAST({col("raw_response")} AS VARCHAR) AS raw{extra}
        FROM (SELECT *, row_number() OVER (PARTITION BY config_id, input_id ORDER BY rowid DESC) AS last_first
              FROM {name}_db.{quote(table)} WHERE experiment_version = $version AND {harness_rows_sql(columns)})
        WHERE last_first = 1""",
        {"version": version},
    )
    con.execute("SET sqlite_all_varchar = false")
    return segments


def _side(con: duckdb.DuckDBPyConnection, cfg: BenchConfig, db_path: Path, version: str, name: str) -> Side:
    """The environment the rows recorded, the configurations and their model versions."""
    present = set(sqlite_columns(db_path, cfg.predictions_table))
    own = f"experiment_version = ? AND {harness_rows_sql(present)}"  # never a row another tool logged
    fields = ("code_commit", "git_dirty", "data_commit", "python_version", "os", "hostname", "packages")
    select = ", ".join(f"CAST(any_value({quote(f)}) AS VARCHAR)" if f in present else "NULL" for f in fields)
    con.execute("SET sqlite_all_varchar = true")
    first = con.execute(
        f"SELECT {select}, COUNT(*) FROM {name}_db.{quote(cfg.predictions_table)} WHERE {own}",
        [version],
    ).fetchone()
    params = sorted(c for c in present if c.startswith("params_"))
    model = next((c for c in ("model_version", "code_version") if c in present), None)
    rows = con.execute(
        f"SELECT config_id, {', '.join(f'any_value({quote(c)})' for c in params) or 'NULL'}, "
        f"{'any_value(' + quote(model) + ')' if model else 'NULL'} "
        f"FROM {name}_db.{quote(cfg.predictions_table)} WHERE {own} GROUP BY 1 ORDER BY 1",
        [version],
    ).fetchall()
    con.execute("SET sqlite_all_varchar = false")
    commit, dirty, data_commit, python, system, host, packages, n = first
    side = Side(version, str(db_path), commit or "", dirty in ("1", "1.0", "true"), data_commit or "", python or "")
    side.machine = " / ".join(x for x in (system, host) if x)
    side.n_rows = int(n)
    try:
        side.packages = json.loads(packages) if packages else {}
    except ValueError:
        side.packages = {}
    for cid, *values in rows:
        version_value = values.pop()
        label = ", ".join(f"{k.removeprefix('params_')}={v}" for k, v in zip(params, values, strict=True)) or cid[:10]
        side.configs[cid] = label
        if version_value:
            side.model_versions[label] = str(version_value)
    return side


# -- attribution ----------------------------------------------------------------------------------------
def _commit_of(cfg: BenchConfig, side: Side) -> str | None:
    """The code commit the rows recorded when git knows it, else the experiment's tag."""
    for ref in (side.commit, side.version):
        if not ref or ref == "uncommitted":
            continue
        if env.git_output(cfg.root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"):
            return ref
    return None


def changed_files(cfg: BenchConfig, base: str, head: str) -> list[dict[str, Any]]:
    """Files changed between two commits with their line counts; template-owned ones marked."""
    out = env.git_output(cfg.root, "diff", "--numstat", base, head, "--", ".", *NOT_CODE) or ""
    files = []
    for line in out.splitlines():
        added, removed, path = line.split("\t", 2)
        owner = "template" if path.startswith(TEMPLATE_OWNED) else "yours"
        files.append(
            {"path": path, "added": int(added) if added.isdigit() else None,
             "removed": int(removed) if removed.isdigit() else None, "owner": owner}
        )  # fmt: skip
    return sorted(files, key=lambda f: (f["owner"] != "yours", f["path"]))


def lock_versions(cfg: BenchConfig, commit: str) -> dict[str, str]:
    """Package -> version from uv.lock at a commit (empty when there is none)."""
    text = env.git_output(cfg.root, "show", f"{commit}:uv.lock")
    if not text:
        return {}
    try:
        packages = tomllib.loads(text).get("package", [])
    except tomllib.TOMLDecodeError:
        return {}
    return {p["name"]: str(p.get("version", "")) for p in packages if "name" in p}


def template_release(cfg: BenchConfig, commit: str) -> str | None:
    text = env.git_output(cfg.root, "show", f"{commit}:.copier-answers.yml") or ""
    match = re.search(r"^_commit:\s*(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def _dict_changes(base: dict[str, str], head: dict[str, str]) -> list[tuple[str, str, str]]:
    return [
        (k, base.get(k, "–"), head.get(k, "–")) for k in sorted(set(base) | set(head)) if base.get(k) != head.get(k)
    ]


def data_changes(con: duckdb.DuckDBPyConnection, base: Side, head: Side) -> dict[str, Any]:
    """Inputs added, removed and changed by content (same id, other input_digest), and each side's digest."""

    def digest(name: str) -> str:
        rows = con.execute(f"SELECT DISTINCT input_id, digest FROM {name} ORDER BY 1, 2").fetchall()
        return hashlib.sha256("\n".join(f"{i}:{d}" for i, d in rows).encode()).hexdigest()[:12]

    ids = "SELECT DISTINCT input_id, digest FROM {}"
    added = con.execute(f"SELECT input_id FROM ({ids.format('head')}) EXCEPT SELECT input_id FROM base").fetchall()
    removed = con.execute(f"SELECT input_id FROM ({ids.format('base')}) EXCEPT SELECT input_id FROM head").fetchall()
    changed = con.execute(
        "SELECT DISTINCT b.input_id FROM base b JOIN head h USING (input_id) "
        "WHERE b.digest IS DISTINCT FROM h.digest ORDER BY 1"
    ).fetchall()
    return {
        "base_digest": digest("base"),
        "head_digest": digest("head"),
        "base_commit": base.data_commit,
        "head_commit": head.data_commit,
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "examples": {
            "added": sorted(r[0] for r in added)[:10],
            "removed": sorted(r[0] for r in removed)[:10],
            "changed": [r[0] for r in changed][:10],
        },
    }


def attribute(cfg: BenchConfig, con: duckdb.DuckDBPyConnection, base: Side, head: Side) -> Attribution:
    found = Attribution(data=data_changes(con, base, head))
    found.configs_added = sorted(head.configs[c] for c in set(head.configs) - set(base.configs))
    found.configs_removed = sorted(base.configs[c] for c in set(base.configs) - set(head.configs))
    found.model_versions = _dict_changes(base.model_versions, head.model_versions)
    found.environment = [
        (name, b, h)
        for name, b, h in (("python", base.python, head.python), ("machine", base.machine, head.machine))
        if b != h
    ]
    found.environment += [(f"package {k}", b, h) for k, b, h in _dict_changes(base.packages, head.packages)]
    base_commit, head_commit = _commit_of(cfg, base), _commit_of(cfg, head)
    if base_commit and head_commit:
        found.files = changed_files(cfg, base_commit, head_commit)
        found.dependencies = _dict_changes(lock_versions(cfg, base_commit), lock_versions(cfg, head_commit))
        releases = (template_release(cfg, base_commit), template_release(cfg, head_commit))
        found.template = (releases[0] or "–", releases[1] or "–") if releases[0] != releases[1] else None
    else:
        found.notes.append("a commit is unknown to git: changed files, dependencies and template release not compared")
    for side in (base, head):
        if side.dirty:
            found.notes.append(f"{side.version} ran with uncommitted changes: the file list cannot show them")
    return found


# -- what moved ----------------------------------------------------------------------------------------
SHARED = """FROM base b JOIN head h ON b.config_id = h.config_id AND b.input_id = h.input_id
            AND b.digest IS NOT DISTINCT FROM h.digest"""


def _proportion(config: str, metric: str, rows: list[tuple[bool, bool]], lower: bool) -> MetricChange:
    """A binary outcome per shared input: McNemar's exact p, paired bootstrap interval, the power."""
    n = len(rows)
    base_yes = sum(b for b, _ in rows)
    head_yes = sum(h for _, h in rows)
    lost = sum(b and not h for b, h in rows)  # yes -> no
    gained = sum(h and not b for b, h in rows)
    both = sum(b and h for b, h in rows)
    change = MetricChange(config, metric, n, None, None, None, None, 1.0, "exact McNemar", lower)
    if not n:
        return change
    difference, ci, _ = stats.paired_binary_bootstrap(both, gained, lost, n - both - gained - lost)
    change.base, change.head, change.difference, change.ci = base_yes / n, head_yes / n, difference, ci
    change.p = stats.mcnemar_exact(lost, gained)
    change.flips = (lost, gained)
    discordance = (lost + gained) / n
    sd = math.sqrt(discordance - difference**2) if discordance > difference**2 else 0.0
    # No discordant input: plan with the cautious sd √0.5 rather than claim a difference of 0 is detectable.
    change.min_detectable = stats.min_detectable_difference(n, sd or stats.design_sd(None))
    return change


def _continuous(config: str, metric: str, base: np.ndarray, head: np.ndarray) -> MetricChange:
    """A number per shared input: paired bootstrap of the mean (or median) difference."""
    n = int(base.size)
    test = "paired bootstrap"
    change = MetricChange(config, metric, n, None, None, None, None, 1.0, test, metric in LOWER_IS_BETTER)
    if not n:
        return change
    if metric == "latency_p50":
        median = lambda a: np.percentile(a, 50, axis=-1)  # noqa: E731
        change.difference, change.ci, change.p = stats.paired_statistic_bootstrap(base, head, median)
        change.base, change.head = float(np.median(base)), float(np.median(head))
    else:
        change.difference, change.ci, change.p = stats.paired_mean_bootstrap(head - base)
        change.base, change.head = float(base.mean()), float(head.mean())
    sd = float((head - base).std(ddof=1)) if n > 1 else 0.0
    change.min_detectable = stats.min_detectable_difference(n, sd) if sd > 0 else None
    return change


def metric_changes(con: duckdb.DuckDBPyConnection, head: Side, quality: str) -> list[MetricChange]:
    changes = []
    for cid, label in head.configs.items():
        rows = con.execute(f"SELECT b.failed, h.failed {SHARED} WHERE b.config_id = ?", [cid]).fetchall()
        if not rows:
            continue
        if quality == "accuracy":
            correct = con.execute(
                f"SELECT b.correct, h.correct {SHARED} WHERE b.config_id = ? "
                "AND b.correct IS NOT NULL AND h.correct IS NOT NULL",
                [cid],
            ).fetchall()
            changes.append(_proportion(label, "accuracy", correct, lower=False))
        elif quality == "mae":
            values = con.execute(
                f"SELECT b.abs_error, h.abs_error {SHARED} WHERE b.config_id = ? "
                "AND b.abs_error IS NOT NULL AND h.abs_error IS NOT NULL",
                [cid],
            ).fetchnumpy()
            changes.append(_continuous(label, "mae", *_arrays(values)))
        changes.append(_proportion(label, "error_rate", rows, lower=True))
        latency = con.execute(
            f"SELECT b.latency, h.latency {SHARED} WHERE b.config_id = ? "
            "AND b.latency IS NOT NULL AND h.latency IS NOT NULL",
            [cid],
        ).fetchnumpy()
        base_latency, head_latency = _arrays(latency)
        changes.append(_continuous(label, "latency_mean", base_latency, head_latency))
        changes.append(_continuous(label, "latency_p50", base_latency, head_latency))
    return changes


def _arrays(fetched: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    first, second = list(fetched.values())
    return np.asarray(first, dtype=float), np.asarray(second, dtype=float)


def judge(changes: list[MetricChange], max_drop: float) -> None:
    """Holm across the family, then a verdict per change: improved, regressed, or no detectable change."""
    for change, adjusted in zip(changes, stats.holm([c.p for c in changes]), strict=True):
        change.p_holm = adjusted
        change.gated = change.metric in GATED
        if change.difference is None or adjusted >= ALPHA or change.difference == 0:
            change.verdict = "no detectable change"
            continue
        worse = change.difference > 0 if change.lower_is_better else change.difference < 0
        if worse and change.gated and abs(change.difference) <= max_drop:
            change.verdict = "within tolerance"
        else:
            change.verdict = "regressed" if worse else "improved"


def segment_changes(con: duckdb.DuckDBPyConnection, head: Side, segments: list[str]) -> list[SegmentChange]:
    """Accuracy per segment value and configuration on the shared inputs (exploratory: no correction)."""
    found = []
    for column in segments:
        s = quote("seg_" + column)
        rows = con.execute(
            f"""SELECT coalesce(h.{s}, '(missing)'), b.config_id,
                       COUNT(*) FILTER (b.correct AND h.correct), COUNT(*) FILTER (NOT b.correct AND h.correct),
                       COUNT(*) FILTER (b.correct AND NOT h.correct), COUNT(*) FILTER (NOT b.correct AND NOT h.correct)
                {SHARED} WHERE b.correct IS NOT NULL AND h.correct IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        for segment, cid, both, gained, lost, neither in rows:
            n = both + gained + lost + neither
            difference, ci, _ = stats.paired_binary_bootstrap(both, gained, lost, neither)
            found.append(
                SegmentChange(
                    column.removeprefix("params_"), str(segment), head.configs.get(cid, cid[:10]), n,
                    (both + lost) / n, (both + gained) / n, difference, ci,
                )
            )  # fmt: skip
    return found


def flipped(con: duckdb.DuckDBPyConnection, head: Side) -> tuple[list[Flip], int]:
    """Inputs right in one experiment and wrong in the other, right→wrong first, with both raw responses."""
    where = f"{SHARED} WHERE b.correct IS NOT NULL AND h.correct IS NOT NULL AND b.correct <> h.correct"
    total = con.execute(f"SELECT COUNT(*) {where}").fetchone()[0]
    rows = con.execute(
        f"""SELECT b.config_id, b.input_id, b.correct, h.truth, b.prediction, h.prediction, b.raw, h.raw {where}
            ORDER BY b.correct DESC, b.config_id, TRY_CAST(b.input_id AS BIGINT), b.input_id LIMIT {MAX_FLIPS}"""
    ).fetchall()
    flips = [
        Flip(head.configs.get(cid, cid[:10]), iid, "right→wrong" if was_right else "wrong→right", *rest)
        for cid, iid, was_right, *rest in rows
    ]
    return flips, int(total)


def compare(cfg: BenchConfig, base: str | None = None, head: str | None = None, max_drop: float = 0.0) -> Comparison:
    """Everything `make compare` prints and `--json` writes."""
    base, head = pick_versions(cfg, base, head)
    paths = locate(cfg, base), locate(cfg, head)
    duck.ensure_sqlite_extension()
    con = duckdb.connect()
    try:
        con.execute("LOAD sqlite")
        segments = _load(con, cfg, paths[0], base, "base")
        _load(con, cfg, paths[1], head, "head")
        sides = _side(con, cfg, paths[0], base, "base"), _side(con, cfg, paths[1], head, "head")
        present = set(sqlite_columns(paths[1], cfg.predictions_table))
        quality = "" if "ground_truth" not in present else ("mae" if cfg.kind == "regression" else "accuracy")
        changes = metric_changes(con, sides[1], quality)
        judge(changes, max_drop)
        shared = con.execute(f"SELECT COUNT(DISTINCT b.input_id) {SHARED}").fetchone()[0]
        seg = segment_changes(con, sides[1], segments) if quality == "accuracy" else []
        flips, n_flips = flipped(con, sides[1]) if quality == "accuracy" else ([], 0)
        attribution = attribute(cfg, con, *sides)
    finally:
        con.close()
    comparison = Comparison(*sides, attribution, changes, seg, flips, n_flips, int(shared), max_drop)
    comparison.notes = _notes(comparison)
    return comparison


def _notes(c: Comparison) -> list[str]:
    notes = [
        f"Paired on {c.n_shared_inputs} input(s) both experiments ran with unchanged content (same input_id and "
        "input_digest); added, removed and changed inputs are counted above but not in the differences.",
        "Proportions: exact McNemar test on the flipped inputs, paired bootstrap 95% interval; other metrics: "
        f"paired bootstrap (B = {stats.BOOTSTRAP_B}) with its own p. Holm's correction across all "
        f"{len(c.changes)} tests. 'could detect' is the smallest true difference found with 80% power at α = 0.05.",
        f"The gate fails on a significant drop of {', '.join(GATED)} larger than {c.max_drop:g} (--max-drop); "
        "latency is reported, not gated (it depends on the machine).",
    ]
    if c.base.machine != c.head.machine:
        notes.append("The experiments ran on different machines: latency differences may be the machine's.")
    return notes


def to_json(c: Comparison) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(c)
    data["exit_code"] = c.exit_code
    data["regressions"] = [asdict(r) for r in c.regressions]
    data["attribution"]["summary"] = c.attribution.summary
    return data
