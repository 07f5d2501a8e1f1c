"""DVC's command line in the harness's process (_versioning/dvc_cli.py) gives what the executable gives.

In-process on the toy benchmark: the return code, the captured output (nothing leaks to the caller's
streams), and the working directory and environment restored after the call, against the `dvc`
executable of this environment on the same commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DVC = Path(sys.executable).with_name("dvc")


def executable(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([str(DVC), *args], cwd=root, env=env, capture_output=True, text=True, check=False)


def test_in_process_dvc_matches_the_executable_and_leaves_the_process_as_it_was(
    toy: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from bench_harness._versioning import dvc_cli, versioning

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    cwd, environment = os.getcwd(), dict(os.environ)
    refused = dvc_cli.run(outside, ["status"])
    assert refused.returncode == executable(outside, "status").returncode == 253
    assert "not inside of a DVC repository" in refused.stderr
    assert (os.getcwd(), dict(os.environ)) == (cwd, environment)
    assert capfd.readouterr() == ("", ""), "DVC's output is captured, not printed"

    subprocess.run(["git", "init", "--quiet"], cwd=toy, check=True)
    versioning.dvc(toy, "init", "--quiet")
    (toy / "data" / "extra.txt").write_text("x\n")
    versioning.dvc(toy, "add", "--quiet", "data")
    assert versioning.dvc(toy, "status", "--quiet", "data.dvc", check=False).returncode == 0
    (toy / "data" / "extra.txt").write_text("changed\n")
    changed = versioning.dvc(toy, "status", "--quiet", "data.dvc", check=False)
    assert changed.returncode == executable(toy, "status", "--quiet", "data.dvc").returncode == 1
    listed = versioning.dvc(toy, "status", "data.dvc")
    assert "modified" in listed.stdout and listed.stdout == executable(toy, "status", "data.dvc").stdout
    with pytest.raises(versioning.VersioningError, match="`dvc push` failed"):
        versioning.dvc(toy, "push")  # no remote: DVC's own error, with its message
    assert (os.getcwd(), dict(os.environ)) == (cwd, environment)
