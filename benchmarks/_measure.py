"""Shared helpers for the benchmarks: time a command and sample its process tree's memory."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 for ones that are gone)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class PeakRSS:
    """Sample the whole process tree's RSS every ``interval`` seconds in a thread.

    Use as a context manager around the work; ``peak`` holds the largest sum seen.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, tree_rss(self.proc))
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(argv: Sequence[str], cwd: str | Path | None = None, timeout: float = 3600) -> dict:
    """Run ``argv`` to completion; return its wall time and the peak RSS of its process tree."""
    t = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as sampler:
        out, err = proc.communicate(timeout=timeout)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed with {proc.returncode}:\n{err[-3000:]}")
    return {"seconds": seconds, "peak_rss_MiB": sampler.peak / 2**20, "stdout_tail": out[-500:]}


BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def without_blas_overrides(argv: Sequence[str] | None = None) -> dict:
    """Re-run this script without the machine's OpenBLAS core-type overrides, if set.

    Some machines here set OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old OpenBLAS
    builds; they pin current numpy to a slower kernel. Benchmarks drop both (for
    themselves and the Dask workers they start) unless ``--keep-blas-env`` is given,
    and record what was set. Returns the record.
    """
    import os
    import sys

    args = list(sys.argv if argv is None else argv)
    was = {k: os.environ.get(k) for k in BLAS_OVERRIDES}
    if "--keep-blas-env" in args:
        return {"dropped": False, "env": was}
    if any(v is not None for v in was.values()):
        env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
        env["IVC_BENCH_DROPPED_BLAS_ENV"] = ",".join(f"{k}={v}" for k, v in was.items() if v is not None)
        os.execve(sys.executable, [sys.executable, *args], env)
    dropped = os.environ.get("IVC_BENCH_DROPPED_BLAS_ENV", "")
    return {"dropped": bool(dropped), "env": dropped or None}


def blas_info() -> list[dict]:
    """The BLAS libraries numpy uses, with their kernels and thread counts."""
    from threadpoolctl import threadpool_info

    return [{k: v for k, v in d.items() if k in ("internal_api", "version", "architecture", "num_threads")}
            for d in threadpool_info()]


def write_results(path: str | Path, results: dict) -> None:
    """Stamp ``results`` with the UTC date and write them as JSON to ``path`` (folders created)."""
    import json

    results["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {path}")
