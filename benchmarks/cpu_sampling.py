"""CPU and memory of the operator benchmark's processes, read from ``/proc`` as it runs.

The benchmark's question is what the operator costs; on a shared 2-core machine
that needs each process's own CPU seconds (and the operator's event loop apart
from its other threads), and each CPU's busy time to see the rest of the
machine's load. A thread samples every counter a few times a second, so any
window of the run (the whole run, the dispatching, each second) can be read
afterwards by interpolating between samples; the operator's resident memory is
sampled with them, so a backlog's cost in memory shows as it builds up.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a live process (all its threads); NaN once it is gone."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat"))
    except OSError:
        return math.nan


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process's main thread: in kopf, its event loop (kopf, the
    dispatcher, the runtime HTTP client); the other threads are mostly the kubernetes
    client's pool (status writes, Events). NaN once it is gone."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))
    except OSError:
        return math.nan


def machine_cpus() -> dict[str, float]:
    """Busy and total seconds of each CPU since boot (``/proc/stat``)."""
    out: dict[str, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
        busy = user + nice + system + irq + softirq + steal
        out[f"{name}_busy"] = busy / TICKS
        out[f"{name}_total"] = (busy + idle + iowait) / TICKS
    return out


def _status_mb(pid: int, field: str) -> float | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory the process has held, MB (the kernel's high-water mark)."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """Resident memory now, MB; NaN once the process is gone."""
    value = _status_mb(pid, "VmRSS")
    return math.nan if value is None else value


class Sampler(threading.Thread):
    """Reads the processes' and the CPUs' counters every ``every`` seconds."""

    def __init__(self, pids: dict[str, list[int]], every: float = 0.2) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.pids = pids
        self.every = every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._done = threading.Event()

    def sample(self) -> None:
        values = machine_cpus()
        for name, pids in self.pids.items():
            values[name] = sum(cpu_seconds(p) for p in pids)
        values["operator.event_loop"] = main_thread_cpu_seconds(self.pids["operator"][0])
        values["operator.rss_mb"] = rss_mb(self.pids["operator"][0])
        self.samples.append((time.time(), values))

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()

    def at(self, when: float, key: str) -> float:
        """The counter at ``when``, linearly between the samples around it."""
        points = [(t, v[key]) for t, v in self.samples if not math.isnan(v[key])]
        if not points:  # never read (a process gone before the first sample)
            return math.nan
        before = [p for p in points if p[0] <= when] or points[:1]
        after = [p for p in points if p[0] >= when] or points[-1:]
        (t0, v0), (t1, v1) = before[-1], after[0]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (when - t0) / (t1 - t0)

    def window(self, start: float, end: float) -> dict[str, Any]:
        """CPU seconds of each process and CPU between two times, and busy fractions."""
        wall = end - start
        keys = self.samples[0][1].keys()
        delta = {k: self.at(end, k) - self.at(start, k) for k in keys}
        cpus = sorted({k.rsplit("_", 1)[0] for k in keys if k.endswith("_busy")})
        ours = sum(delta[name] for name in self.pids)
        machine_busy = sum(delta[f"{c}_busy"] for c in cpus)
        loop = delta["operator.event_loop"]
        return {
            "wall_seconds": wall,
            "cpu_seconds": {name: delta[name] for name in self.pids}
            | {"rest_of_machine": max(0.0, machine_busy - ours)},
            "operator_threads_cpu_seconds": {
                "event_loop": loop,
                "other_threads": delta["operator"] - loop,
            },
            "busy_fraction_of_one_core": {
                name: delta[name] / wall if wall > 0 else 0.0 for name in self.pids
            },
            # A window shorter than one sample has no ticks: say 0, not divide by zero.
            "cpu_busy_fraction": {
                c: delta[f"{c}_busy"] / delta[f"{c}_total"] if delta[f"{c}_total"] else 0.0
                for c in cpus
            },
        }
