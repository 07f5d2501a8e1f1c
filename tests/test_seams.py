"""Seams of long-lived use (issue 13 point 9, issue 14 row 14), in-process on the toy (tests/toy.py).

* `data_format` changed by an update: the data file of the new format is missing while the old one
  is there. The run refuses with the exact command; `bench prepare-data` converts; the next run works.
* A symlinked results database under DVC versioning: refused with the fix before anything runs (the
  record step used to crash resolving the link outside the project).
* A full disk during `dvc add`: DVC's own error line is read (no --quiet) and named with its fix,
  for real on a tiny tmpfs when this machine lets us mount one.
* Unreadable data: one line with the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import toy as toy_project

DVC = Path(sys.executable).with_name("dvc")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def set_toml(root: Path, old: str, new: str) -> None:
    toml = root / "benchmark.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new))


def bench(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    from bench_harness._cli.main import main

    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- data_format changed by an update ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_changed_data_format_refuses_with_the_command_then_converts(
    toy: Path, capsys: pytest.CaptureFixture, fmt: str
) -> None:
    """What `copier update -d data_format=csv` leaves: benchmark.toml says data/sample.csv, data/ holds jsonl."""
    set_toml(toy, 'path = "data/sample.jsonl"\nformat = "jsonl"', f'path = "data/sample.{fmt}"\nformat = "{fmt}"')
    code, out, err = bench(capsys, "run")
    assert code == 2, out + err
    assert f"data/sample.{fmt} does not exist, but sample.jsonl does" in err
    assert "`uv run bench prepare-data`" in err and "Traceback" not in err

    code, out, _ = bench(capsys, "prepare-data")
    assert code == 0 and f"data/sample.{fmt}" in out
    from bench_harness._core.datafiles import read_records

    assert read_records(toy / "data" / f"sample.{fmt}") == toy_project.sample_items()

    code, out, err = bench(capsys, "run")
    assert code == 0, out + err
    assert "24 tasks, 24 computed" in out


def test_prepare_data_keeps_a_users_own_file_and_is_idempotent(toy: Path, capsys: pytest.CaptureFixture) -> None:
    """Not the bundled sample: the user's data is converted, never deleted."""
    (toy / "data" / "sample.jsonl").rename(toy / "data" / "mine.jsonl")
    set_toml(toy, 'path = "data/sample.jsonl"\nformat = "jsonl"', 'path = "data/mine.csv"\nformat = "csv"')
    code, out, _ = bench(capsys, "prepare-data")
    assert code == 0 and "mine.jsonl converted to data/mine.csv; mine.jsonl is kept" in out
    assert (toy / "data" / "mine.jsonl").exists() and (toy / "data" / "mine.csv").exists()
    code, out, _ = bench(capsys, "prepare-data")
    assert code == 0 and "data/mine.csv is in place" in out


def test_missing_data_without_another_format_says_where_to_put_it(toy: Path, capsys: pytest.CaptureFixture) -> None:
    (toy / "data" / "sample.jsonl").unlink()
    code, _, err = bench(capsys, "run")
    assert code == 2 and "data/sample.jsonl does not exist: put your data there" in err


def test_unreadable_data_is_one_line_with_the_fix(
    toy: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chmod 000 is no test under root: the open itself is made to fail as it would for another user."""
    real_open = Path.open

    def denied(self: Path, *args, **kwargs):
        if self.name == "sample.jsonl":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    code, _, err = bench(capsys, "run")
    assert code == 2 and "cannot be read (permission denied): chmod u+r" in err and "Traceback" not in err


# -- a symlinked results database --------------------------------------------------------------------------
def versioned_toy(root: Path) -> None:
    """The toy as a git repository with DVC set up at standard versioning, everything committed."""
    set_toml(root, 'level = "minimal"', 'level = "standard"')
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    subprocess.run([str(DVC), "init", "-q"], cwd=root, check=True, capture_output=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")


@pytest.mark.skipif(not DVC.exists(), reason="dvc is not installed in this environment")
def test_symlinked_database_is_refused_with_the_fix(toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    versioned_toy(toy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.db").touch()
    (toy / "benchmark.db").symlink_to(elsewhere / "real.db")
    code, out, err = bench(capsys, "experiment", "--quiet")
    assert code == 2, out + err
    assert f"benchmark.db is a symlink to {elsewhere / 'real.db'}" in err
    assert f"rm benchmark.db && mv {elsewhere / 'real.db'} benchmark.db" in err
    assert "Traceback" not in err and git(toy, "tag", "-l") == ""

    from bench_harness._core.config import load_config
    from bench_harness._versioning import versioning

    cfg = load_config()
    assert versioning.relative(cfg, cfg.db_path) == "benchmark.db"  # the link's own name, not its target's
    with pytest.raises(versioning.VersioningError, match="is a symlink"):  # the record step refuses too
        versioning.commit_results(cfg, "e0.0.1")
    assert (toy / "benchmark.db").is_symlink(), "DVC never replaced the link with a copy"


def test_symlinked_database_is_fine_without_dvc(toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Minimal versioning: no DVC, SQLite follows the link: the rows land in the target."""
    target = tmp_path / "real.db"
    (toy / "benchmark.db").symlink_to(target)
    code, out, err = bench(capsys, "run")
    assert code == 0, out + err
    assert target.stat().st_size > 0 and (toy / "benchmark.db").is_symlink()


# -- a full disk during `dvc add` -------------------------------------------------------------------------
def test_full_disk_message_names_the_cause_and_the_fix(toy: Path) -> None:
    from bench_harness._versioning import versioning

    dvc_error = (
        "ERROR: failed to transfer 'eca11e' - [Errno 28] No space left on device: 'benchmark.db' -> "
        "'.dvc/cache/files/md5/ec/.m2u.tmp'\nERROR: unexpected error - [Errno 28] No space left on device"
    )
    cause = versioning.failure_cause("add", dvc_error)
    assert cause and "no space left on the project's disk" in cause and "df -h ." in cause
    assert "make experiment" in cause
    assert "remote" in versioning.failure_cause("push", "OSError: [Errno 122] Disk quota exceeded")
    assert versioning.failure_cause("add", "ERROR: some other failure") is None


def can_mount_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    return mounted.returncode == 0


@pytest.mark.skipif(not DVC.exists(), reason="dvc is not installed in this environment")
def test_full_disk_during_dvc_add_names_no_space_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For real: the project on a 4 MB tmpfs, the version file larger than what is left for DVC's cache copy
    (the working database and the experiment's results/<version>.db fit, a third copy does not)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not can_mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs root): the message mapping is tested above")
    try:
        root = toy_project.write_project(disk / "toy")
        versioned_toy(root)
        free = shutil.disk_usage(disk).free
        with sqlite3.connect(root / "benchmark.db") as con:  # one version's rows: fits twice, not three times
            con.execute("CREATE TABLE predictions (experiment_version TEXT, raw_response BLOB)")
            blobs = [("e0.0.1", os.urandom(2000)) for _ in range(int(free * 0.4) // 2100)]
            con.executemany("INSERT INTO predictions VALUES (?, ?)", blobs)
        con.close()
        for _ in toy_project.activate(root, monkeypatch):
            from bench_harness._core.config import load_config
            from bench_harness._versioning import versioning

            with pytest.raises(versioning.VersioningError) as refused:
                versioning.commit_results(load_config(), "e0.0.1")
            message = str(refused.value)
            assert "no space left on the project's disk" in message and "df -h ." in message, message
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_sample_items_are_json_round_trippable() -> None:
    """The toy's items survive every format (the conversion test compares them as read back)."""
    assert json.loads(json.dumps(toy_project.sample_items())) == toy_project.sample_items()
