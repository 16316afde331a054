"""What the trainer uses: CPU, memory and (with a GPU) GPU of its own process tree, with peaks.

`ResourceSampler.sample()` reads the trainer process and every child (Ray and Optuna workers,
joblib's processes): CPU cores (psutil's cpu_percent / 100 since the previous sample, summed),
resident memory summed, and, when `nvidia-smi` is on PATH, GPU utilisation and memory. It keeps
the peaks. `status()` is the TrainingRun's `status.resources` block (camelCase, GPU fields only
when a GPU answered). `start()` samples on a daemon thread every few seconds so a long single
step (one big fit) still moves the figures and the peaks; nothing here ever raises into training.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

NVIDIA_SMI = "nvidia-smi"
GPU_QUERY = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
MIB = 1024 * 1024


@dataclass
class Sample:
    cpu_cores: float
    memory_bytes: int
    gpu_utilization: float | None = None
    gpu_memory_bytes: int | None = None
    sampled_at: str = ""


def gpu_usage(runner: Callable[..., Any] = subprocess.run) -> tuple[float, int] | None:
    """(utilisation % averaged over the GPUs, memory bytes summed) from nvidia-smi; None without one."""
    binary = shutil.which(NVIDIA_SMI)
    if binary is None:
        return None
    try:
        done = runner([binary, *GPU_QUERY], capture_output=True, text=True, timeout=5, check=False)
        if done.returncode != 0:
            return None
        rows = [[part.strip() for part in line.split(",")] for line in done.stdout.splitlines() if line.strip()]
        figures = [(float(row[0]), float(row[1])) for row in rows if len(row) >= 2]
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if not figures:
        return None
    utilisation = sum(u for u, _ in figures) / len(figures)
    return utilisation, int(sum(m for _, m in figures) * MIB)


class ResourceSampler:
    """Samples one process tree (default: this process); thread-safe; keeps the peaks."""

    def __init__(self, pid: int | None = None, gpu: Callable[[], tuple[float, int] | None] = gpu_usage):
        self._gpu = gpu
        self._lock = threading.Lock()
        self._procs: dict[tuple[int, float], Any] = {}
        self.last: Sample | None = None
        self.peak_cpu = 0.0
        self.peak_memory = 0
        self.peak_gpu: float | None = None
        self.peak_gpu_memory: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        try:
            import psutil

            self._psutil: Any = psutil
            self._root: Any = psutil.Process(pid or os.getpid())
            self._tree()  # the first cpu_percent call of each process only sets its baseline
        except Exception as error:  # noqa: BLE001 - no psutil, no such process: no figures, no failure
            log.warning("resource sampling unavailable: %s", error)
            self._psutil = self._root = None

    def _tree(self) -> list[Any]:
        """The processes of the tree, reusing the objects that hold each one's CPU baseline."""
        ps = self._psutil
        try:
            current = [self._root, *self._root.children(recursive=True)]
        except ps.Error:
            current = [self._root]
        kept: dict[tuple[int, float], Any] = {}
        for proc in current:
            try:
                key = (proc.pid, proc.create_time())
            except ps.Error:
                continue
            known = self._procs.get(key)
            if known is None:
                try:
                    proc.cpu_percent(None)
                except ps.Error:
                    continue
                known = proc
            kept[key] = known
        self._procs = kept
        return list(kept.values())

    def sample(self) -> Sample | None:
        """Read the tree now; None only when sampling is unavailable. Never raises."""
        if self._root is None:
            return None
        try:
            with self._lock:
                cpu, rss = 0.0, 0
                ps = self._psutil
                for proc in self._tree():
                    try:
                        with proc.oneshot():
                            cpu += proc.cpu_percent(None) / 100.0
                            rss += proc.memory_info().rss
                    except ps.Error:  # ended between the listing and the read
                        continue
                gpu = self._gpu()
                sample = Sample(round(cpu, 3), int(rss), sampled_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                if gpu is not None:
                    sample.gpu_utilization, sample.gpu_memory_bytes = round(float(gpu[0]), 1), int(gpu[1])
                    self.peak_gpu = max(self.peak_gpu or 0.0, sample.gpu_utilization)
                    self.peak_gpu_memory = max(self.peak_gpu_memory or 0, sample.gpu_memory_bytes)
                self.peak_cpu = max(self.peak_cpu, sample.cpu_cores)
                self.peak_memory = max(self.peak_memory, sample.memory_bytes)
                self.last = sample
                return sample
        except Exception as error:  # noqa: BLE001 - a sampling hiccup must not stop training
            log.debug("resource sample failed: %s", error)
            return self.last

    def status(self, fresh: bool = False) -> dict[str, Any]:
        """`status.resources` (camelCase); empty before the first sample. GPU fields only with a GPU."""
        sample = self.sample() if fresh or self.last is None else self.last
        if sample is None:
            return {}
        block: dict[str, Any] = {
            "cpuCores": sample.cpu_cores, "memoryBytes": sample.memory_bytes,
            "peakCpuCores": round(self.peak_cpu, 3), "peakMemoryBytes": self.peak_memory,
            "sampledAt": sample.sampled_at,
        }
        if sample.gpu_utilization is not None:
            block["gpuUtilization"] = sample.gpu_utilization
            block["gpuMemoryBytes"] = sample.gpu_memory_bytes
        if self.peak_gpu is not None:
            block["peakGpuUtilization"] = self.peak_gpu
            block["peakGpuMemoryBytes"] = self.peak_gpu_memory
        return block

    def start(self, interval: float = 5.0, on_sample: Callable[[Sample], None] | None = None) -> None:
        """Sample every `interval` seconds on a daemon thread (it never keeps the process alive)."""
        if self._root is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                sample = self.sample()
                if sample is not None and on_sample is not None:
                    try:
                        on_sample(sample)
                    except Exception:  # noqa: BLE001 - the thread outlives a failed report
                        log.warning("reporting resources failed", exc_info=True)

        self._thread = threading.Thread(target=loop, name="pitwall-resources", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def measure(seconds: float = 0.5, pid: int | None = None) -> dict[str, Any]:
    """One `status.resources` block over `seconds` (for a quick look: `python -m pitwall_trainer.resources`)."""
    sampler = ResourceSampler(pid)
    time.sleep(seconds)
    return sampler.status(fresh=True)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(pid=int(sys.argv[1]) if len(sys.argv) > 1 else None)))
