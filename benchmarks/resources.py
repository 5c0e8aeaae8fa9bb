"""Resource sampling during a run: CPU% and RSS of the serving processes and of the host.

Server processes are found by PID, by a command-line pattern, by a systemd unit (its cgroup) or by
a podman container; their children count with them. The load generator samples itself too, so
every report can show the tool was not the bottleneck.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Targets:
    pids: list[int] = field(default_factory=list)
    pattern: str | None = None  # regex over the command line, e.g. "llama-server"
    units: list[str] = field(default_factory=list)  # systemd units, e.g. qwen3-llamacpp@8081.service
    containers: list[str] = field(default_factory=list)

    def resolve(self) -> list[psutil.Process]:
        pids = set(self.pids)
        for unit in self.units:
            for base in ("/sys/fs/cgroup/system.slice", "/sys/fs/cgroup/system.slice/system-qwen3.slice"):
                procs = Path(base, unit, "cgroup.procs")
                if procs.is_file():
                    pids.update(int(p) for p in procs.read_text().split())
        for name in self.containers:
            out = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", name], capture_output=True,
                                 text=True, check=False)
            if out.returncode == 0 and out.stdout.strip().isdigit():
                pids.add(int(out.stdout.strip()))
        if self.pattern:
            regex = re.compile(self.pattern)
            me = os.getpid()
            for proc in psutil.process_iter(["pid", "cmdline"]):
                cmdline = " ".join(proc.info["cmdline"] or [])
                if proc.info["pid"] != me and regex.search(cmdline) and "benchmarks" not in cmdline:
                    pids.add(proc.info["pid"])
        processes = []
        for pid in sorted(pids):
            try:
                proc = psutil.Process(pid)
                processes.append(proc)
                processes.extend(proc.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        unique = {p.pid: p for p in processes}
        return list(unique.values())


class Sampler:
    """Samples in a background thread at a fixed interval; `mark(label)` tags the samples that follow."""

    def __init__(self, targets: Targets, interval: float = 0.5) -> None:
        self.targets = targets
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.label = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._processes = targets.resolve()
        self._self = psutil.Process()
        self.cpu_count = psutil.cpu_count() or 1

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    def mark(self, label: str) -> None:
        self.label = label

    def start(self) -> Sampler:
        for proc in [*self._processes, self._self]:
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            cpu, rss, alive = 0.0, 0, 0
            for proc in self._processes:
                try:
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    alive += 1
                except psutil.Error:
                    continue
            memory = psutil.virtual_memory()
            self.samples.append({
                "t": time.perf_counter() - self._t0,
                "level": self.label,
                "server_cpu_percent": cpu,
                "server_rss_bytes": rss,
                "server_processes": alive,
                "host_cpu_percent": psutil.cpu_percent(None) * self.cpu_count,
                "host_used_bytes": memory.total - memory.available,
                "loadgen_cpu_percent": self._self.cpu_percent(None),
                "loadgen_rss_bytes": self._self.memory_info().rss,
            })


def level_usage(samples: list[dict[str, Any]], label: str) -> dict[str, float | None]:
    """Peaks and means of one level's samples (CPU% where 100 = one core)."""
    rows = [s for s in samples if s["level"] == label]
    out: dict[str, float | None] = {}
    for key in ("server_cpu_percent", "server_rss_bytes", "host_cpu_percent", "host_used_bytes",
                "loadgen_cpu_percent"):
        values = [r[key] for r in rows]
        out[f"{key}_mean"] = sum(values) / len(values) if values else None
        out[f"{key}_peak"] = max(values) if values else None
    return out
