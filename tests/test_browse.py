"""`bench browse` serves the results in Datasette on 127.0.0.1, read-only: the database is byte-identical after."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import toy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_json(url: str, deadline: float) -> object:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_browse_serves_both_tables_and_never_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = toy.write_project(tmp_path / "toy", files={"predict": toy.OLD_STYLE_PREDICT})
    db = toy.record_experiments(root, monkeypatch)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    port = free_port()
    env = {**os.environ, "BENCH_ROOT": str(root), "PYTHONPATH": f"{toy.HARNESS_SRC}{os.pathsep}{root / 'src'}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "bench_harness", "browse", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/benchmark"
        rows = fetch_json(f"{base}/predictions.json?_shape=array&_size=100", time.monotonic() + 120)
        assert len(rows) == 48 and {"config_id", "input_id", "prediction"} <= set(rows[0])
        query = urllib.parse.quote("SELECT experiment_version, COUNT(*) AS n FROM metrics GROUP BY 1 ORDER BY 1")
        counts = fetch_json(f"{base}.json?sql={query}&_shape=array", time.monotonic() + 30)
        assert counts == [{"experiment_version": "e0.0.1", "n": 2}, {"experiment_version": "e0.0.2", "n": 2}]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name)) == [db.name], "no -journal/-wal"


def test_browse_without_a_database_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root = toy.write_project(tmp_path / "toy")
    for _ in toy.activate(root, monkeypatch):
        from bench_harness._cli.main import main

        assert main(["browse"]) == 1
        assert "run `make experiment`" in capsys.readouterr().err
