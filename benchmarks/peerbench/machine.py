"""The machine a report was measured on: its processor, other processes' share of the
cores while a row runs, and numpy's matmul peak (the report's "% peak")."""

from __future__ import annotations

import math
import os
import platform
import socket
import time
from typing import Any

import numpy as np

from grokescape.selfbench import timed


def _cpu_busy_seconds() -> float:
    """CPU-seconds the whole machine has been busy since boot (/proc/stat), NaN if unknown."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(v) for v in fh.readline().split()[1:9]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def _own_cpu_seconds() -> float:
    """CPU-seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """Fraction of the machine's cores that other processes kept busy over an interval."""

    def __init__(self) -> None:
        self.busy, self.own, self.tic = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()

    def fraction(self) -> float:
        wall = time.perf_counter() - self.tic
        other = (_cpu_busy_seconds() - self.busy) - (_own_cpu_seconds() - self.own)
        return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else math.nan


def wait_idle(max_wait_s: float, threshold: float = 0.1) -> tuple[float, float]:
    """Wait (at most max_wait_s) until other processes use < threshold of the machine
    over half a second; returns (seconds waited, last measured fraction)."""
    start = time.perf_counter()
    while True:
        probe = OtherLoad()
        time.sleep(0.5)
        frac = probe.fraction()
        waited = time.perf_counter() - start
        if not frac >= threshold or waited >= max_wait_s:
            return waited, frac


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    from grokescape._config import config

    blas: Any = None
    try:
        info = np.show_config(mode="dicts")  # type: ignore[func-returns-value]
        blas = info["Build Dependencies"]["blas"]
    except Exception:  # older numpy: informational only
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    env_keys = ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "XLA_FLAGS")
    return {
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "grokescape_config": config(),
        "numpy_blas": blas,
        "environment": {k: os.environ.get(k) for k in env_keys},
        "load_average_at_start": load,
    }


def matmul_peak(dtype: str, repeats: int, size: int = 2048) -> dict[str, Any]:
    """Best GFLOP/s of a size x size @ size x size numpy matmul."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    times = [timed(np.matmul, a, b, out) for _ in range(repeats)]
    return {
        "dtype": dtype,
        "size": size,
        "times_s": times,
        "gflops": 2 * size**3 / min(times) / 1e9,
    }
