"""System parameters (CPU, memory, disk) under xetrack's column names, for every executor.

Template-owned. xetrack samples in a child process per tracked call, which fails inside pool
workers ("daemonic processes are not allowed to have children"). Here one thread in the main
process samples the whole process tree (the main process plus worker processes) and each
recorded batch gets the averages since the previous batch.
"""

from __future__ import annotations

import threading
import time

import psutil

KEYS = ("cpu", "memory_percent", "p_memory_percent", "disk_percent")


class SystemMonitor:
    """Background sampler; `snapshot()` returns and resets the running averages."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.process = psutil.Process()
        self._sums = dict.fromkeys(KEYS, 0.0)
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-monitor", daemon=True)
        self._cpu_seen: dict[int, psutil.Process] = {}
        self._last: dict[str, float] | None = None
        self._sampled_at = 0.0

    def __enter__(self) -> SystemMonitor:
        # psutil's first cpu_percent() of a process is always 0.0: prime it, so a run shorter
        # than one sampling interval still reports the CPU it used.
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _tree(self) -> list[psutil.Process]:
        try:
            children = self.process.children(recursive=True)
        except psutil.Error:
            children = []
        tree = []
        for proc in (self.process, *children):
            # cpu_percent needs the same Process object between calls to measure an interval
            tree.append(self._cpu_seen.setdefault(proc.pid, proc))
        return tree

    def sample(self) -> dict[str, float]:
        cpu = p_memory = 0.0
        for proc in self._tree():
            try:
                cpu += proc.cpu_percent(None)
                p_memory += proc.memory_percent()
            except psutil.Error:
                continue
        memory = psutil.virtual_memory()
        self._sampled_at = time.monotonic()
        return {
            "cpu": round(cpu, 3),
            "memory_percent": round(memory.used * 100 / memory.total, 3),
            "p_memory_percent": round(p_memory, 3),
            "disk_percent": round(psutil.disk_usage("/").percent, 3),
        }

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:  # one sampler at a time: psutil measures CPU since the previous call
                values = self.sample()
                for key in KEYS:
                    self._sums[key] += values[key]
                self._count += 1

    def snapshot(self) -> dict[str, float]:
        """Averages since the last snapshot. With no sample since then: an immediate one (CPU since the
        previous sample) when the last was at least an interval ago (the sampling thread was starved),
        else the latest values stand for this batch too (a batch written right after another, the
        run's last rows): psutil counts CPU time in clock ticks, and a sample over a few milliseconds
        reads 0 % (or 800 %)."""
        with self._lock:
            if self._count:
                self._last = {key: round(self._sums[key] / self._count, 3) for key in KEYS}
                self._sums = dict.fromkeys(KEYS, 0.0)
                self._count = 0
            elif self._last is None or time.monotonic() - self._sampled_at >= self.interval:
                self._last = self.sample()
            return dict(self._last)
