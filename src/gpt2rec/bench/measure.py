"""Measuring helpers: peak memory of a block, percentiles, the machine the bench ran on."""

from __future__ import annotations

import os
import platform
import resource
import threading
import time

import numpy as np
import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; elsewhere the high-water mark)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Peak RSS (MB) of the process while the block runs, sampled every `interval` seconds by a
    thread (it includes what the process already held before the block). With CUDA, also the peak
    GPU memory allocated by torch in the block (`gpu_mb`)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_mb = 0.0
        self.gpu_mb: float | None = None
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self) -> PeakMemory:
        self.peak_mb = rss_mb()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
        if torch.cuda.is_available():
            self.gpu_mb = torch.cuda.max_memory_allocated() / 2**20


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def percentiles_ms(seconds: list[float], qs=(50, 99)) -> dict:
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {f"p{q}_ms": float(np.percentile(arr, q)) for q in qs} | {"n": int(len(arr))}


def mean_ci95(values) -> dict:
    """Mean and a normal-approximation 95% interval (mean +- 1.96 * sd / sqrt(n))."""
    arr = np.asarray(values, dtype=np.float64)
    n = len(arr)
    mean = float(arr.mean()) if n else float("nan")
    half = float(1.96 * arr.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages: other work on the machine skews every timing."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
