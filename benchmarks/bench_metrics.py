"""Calinski-Harabasz + Davies-Bouldin on a Dask cluster, side by side with its peers.

On the same data (default 1M x 200 float32, generated chunk by chunk on the
cluster with dask's random generator and persisted on a 2-worker, 1-thread-each
LocalCluster on 127.0.0.1), with k=100 labels, each row's nearest of 100 random
centers:

* ``ivc cluster_scores``: :func:`cluster_lib.metrics.cluster_scores` (CH and DB,
  two passes: counts/sums, then distances to centroids), per-pass times from its log;
* ``Lloyd-like pass``: the reference cost of one k-means iteration on the same
  persisted data: per chunk ``X @ C.T``, argmin, per-cluster sums and counts,
  combined by a tree reduction; plain (one distance matrix per chunk) and blocked
  (2048 rows at a time into one buffer). The budget: CH + DB should cost at most
  1.5x the faster of the two. Its GEMM floor (the chunk products alone, one
  thread per worker) is printed for scale;
* ``scikit-learn``: ``calinski_harabasz_score`` and ``davies_bouldin_score`` on
  the same data gathered into this process (gathering timed separately).

OpenBLAS is slowed by ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``, which are set on
these machines; run with both unset, and the JSON records what they were::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_metrics.py

Options: ``--rows N --dims D --clusters K --repeats R --chunk-rows C --skip-sklearn``.
It prints a table and writes ``benchmarks/results/metrics.json``. Develop at
``--rows 200000``; the full size holds 800 MB on the workers and, for
scikit-learn, 800 MB + a 1.6 GB float64 copy in this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# --- the Lloyd-like reference pass ---------------------------------------------------


def _nearest(x: np.ndarray, centers: np.ndarray, c2: np.ndarray) -> np.ndarray:
    d = x @ centers.T
    d *= -2.0
    d += c2
    return d.argmin(axis=1)


def _nearest_blocked(x: np.ndarray, centers: np.ndarray, c2: np.ndarray, rows: int = 2048) -> np.ndarray:
    # one preallocated distance block, reused: no 16 MB temporaries per chunk
    n = x.shape[0]
    lab = np.empty(n, dtype=np.intp)
    g = np.empty((min(rows, n), centers.shape[0]), dtype=x.dtype)
    ct = np.ascontiguousarray(centers.T)
    for s in range(0, n, rows):
        xb = x[s : s + rows]
        gb = g[: xb.shape[0]]
        np.matmul(xb, ct, out=gb)
        gb *= -2.0
        gb += c2
        np.argmin(gb, axis=1, out=lab[s : s + xb.shape[0]])
    return lab


def _lloyd_chunk(
    x: np.ndarray, centers: np.ndarray, c2: np.ndarray, blocked: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    import scipy.sparse as sp

    k = centers.shape[0]
    lab = _nearest_blocked(x, centers, c2) if blocked else _nearest(x, centers, c2)
    n = lab.shape[0]
    onehot = sp.csc_matrix((np.ones(n, dtype=x.dtype), lab, np.arange(n + 1)), shape=(k, n))
    return (onehot @ x).astype(np.float64), np.bincount(lab, minlength=k)


def _lloyd_combine(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def lloyd_pass(X, centers: np.ndarray, split_every: int = 8, blocked: bool = False) -> np.ndarray:
    """One k-means iteration on a dask array; returns the new centers (k, d).

    ``blocked=False`` is the plain kernel (one ``X @ C.T`` per chunk); ``True`` takes
    the distances 2048 rows at a time into one reused buffer.
    """
    import dask

    c = dask.delayed(centers, traverse=False)
    c2 = dask.delayed((centers.astype(np.float64) ** 2).sum(axis=1).astype(centers.dtype), traverse=False)
    parts = [dask.delayed(_lloyd_chunk)(b, c, c2, blocked) for b in X.to_delayed()[:, 0]]
    while len(parts) > 1:
        parts = [
            dask.delayed(_lloyd_combine)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    (sums, counts) = dask.compute(parts[0])[0]
    return (sums / np.maximum(counts, 1)[:, None]).astype(centers.dtype)


def _gemm_floor(chunk: np.ndarray, centers: np.ndarray, n_chunks: int, workers: int = 2) -> float:
    """Seconds the distance GEMMs alone would take: one chunk's ``X @ C.T`` on one
    thread in this process, times the chunks, over the workers."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        chunk @ centers.T
        best = min(_time(lambda: chunk @ centers.T, 1)[0][0] for _ in range(5))
    return best * n_chunks / workers


# --- harness -------------------------------------------------------------------------


class _PassLog(logging.Handler):
    """Collect the per-pass seconds that cluster_lib.metrics logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("pass "):
            self.seconds.append(float(record.args[-1]))


def _time(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--chunk-rows", type=int, default=None, help="default: the store's chunking")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "metrics.json"))
    args = ap.parse_args(argv)

    import dask
    import dask.array as da
    import distributed
    import scipy
    import sklearn
    import sklearn.metrics as skm
    from distributed import Client, LocalCluster, wait

    from cluster_lib.metrics import cluster_scores
    from storage import choose_chunk_rows

    chunk_rows = args.chunk_rows or choose_chunk_rows(args.dims)
    env = {v: os.environ.get(v) for v in OPENBLAS_VARS}
    if any(env.values()):
        print(f"note: {env} is set and slows OpenBLAS; best run as "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_metrics.py`")
    pass_log = _PassLog()
    logging.getLogger("cluster_lib.metrics").addHandler(pass_log)
    logging.getLogger("cluster_lib.metrics").setLevel(logging.INFO)

    result: dict = {
        "rows": args.rows, "dims": args.dims, "clusters": args.clusters, "chunk_rows": chunk_rows,
        "dtype": "float32", "repeats": args.repeats, "env": env,
        "env_note": "best run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they slow OpenBLAS): "
        "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_metrics.py",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": {
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "host": "127.0.0.1"},
    }
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", memory_limit="6GiB", silence_logs=40) as lc, Client(lc):
        rng = da.random.default_rng(0)
        X = rng.standard_normal((args.rows, args.dims), chunks=(chunk_rows, args.dims), dtype=np.float32)
        X = (X + np.float32(1.0)).persist()  # uncentered, like real descriptors
        centers = np.random.default_rng(1).standard_normal((args.clusters, args.dims)).astype(np.float32) + 1
        c2 = (centers.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
        labels = X.map_blocks(_nearest, centers, c2, drop_axis=1, dtype=np.int64).persist()
        wait([X, labels])
        result["n_chunks"] = X.numblocks[0]
        result["gemm_floor_seconds"] = _gemm_floor(X.blocks[0].compute(), centers, X.numblocks[0])

        # warm up the workers (imports, first task) outside the timings
        cluster_scores(X[: 2 * chunk_rows], labels[: 2 * chunk_rows])
        lloyd_pass(X[: 2 * chunk_rows], centers)
        lloyd_pass(X[: 2 * chunk_rows], centers, blocked=True)
        pass_log.seconds.clear()

        ivc_times, lloyd_times, blocked_times = [], [], []
        for _ in range(args.repeats):  # alternate the contenders
            t, scores = _time(lambda: cluster_scores(X, labels), 1)
            ivc_times += t
            t, _ = _time(lambda: lloyd_pass(X, centers), 1)
            lloyd_times += t
            t, _ = _time(lambda: lloyd_pass(X, centers, blocked=True), 1)
            blocked_times += t
        passes = np.array(pass_log.seconds).reshape(args.repeats, 2)
        result["ivc"] = {"seconds": ivc_times, "pass1_seconds": passes[:, 0].tolist(),
                         "pass2_seconds": passes[:, 1].tolist(),
                         "calinski_harabasz": scores.calinski_harabasz,
                         "davies_bouldin": scores.davies_bouldin}
        result["lloyd_pass"] = {"seconds": lloyd_times}
        result["lloyd_pass_blocked"] = {"seconds": blocked_times}

        if not args.skip_sklearn:
            t = time.perf_counter()
            Xn, yn = dask.compute(X, labels)
            gather = time.perf_counter() - t
            t = time.perf_counter()
            ch = skm.calinski_harabasz_score(Xn, yn)
            t_ch = time.perf_counter() - t
            t = time.perf_counter()
            db = skm.davies_bouldin_score(Xn, yn)
            t_db = time.perf_counter() - t
            result["sklearn"] = {"gather_seconds": gather, "calinski_harabasz_seconds": t_ch,
                                 "davies_bouldin_seconds": t_db, "seconds": t_ch + t_db,
                                 "calinski_harabasz": ch, "davies_bouldin": db,
                                 "rel_diff_ch": abs(scores.calinski_harabasz / ch - 1),
                                 "rel_diff_db": abs(scores.davies_bouldin / db - 1)}
            del Xn, yn

    ivc_s = statistics.median(ivc_times)
    plain_s, blocked_s = statistics.median(lloyd_times), statistics.median(blocked_times)
    lloyd_s = min(plain_s, blocked_s)  # the budget is set by the faster Lloyd pass
    result["ratio_ivc_to_lloyd"] = ivc_s / lloyd_s
    result["ratio_ivc_to_lloyd_plain"] = ivc_s / plain_s
    result["ratio_ivc_to_lloyd_blocked"] = ivc_s / blocked_s
    result["target_ratio"] = 1.5
    result["meets_target"] = ivc_s / lloyd_s <= 1.5

    gb = args.rows * args.dims * 4 / 1e9
    print(f"\n{args.rows} x {args.dims} float32 ({gb:.2f} GB), k={args.clusters}, "
          f"{result['n_chunks']} chunks of {chunk_rows} rows, 2 workers x 1 thread; median of {args.repeats}")
    print(f"{'contender':<36}{'seconds':>10}{'x Lloyd':>10}   (x Lloyd: the faster Lloyd pass)")
    rows = [("ivc cluster_scores (CH + DB)", ivc_s),
            ("  pass 1: counts, sums", statistics.median(result["ivc"]["pass1_seconds"])),
            ("  pass 2: distances to centroids", statistics.median(result["ivc"]["pass2_seconds"])),
            ("Lloyd-like pass (X @ C.T, argmin)", plain_s),
            ("  same, 2048-row blocks, one buffer", blocked_s),
            ("  its GEMM floor (2 cores)", result["gemm_floor_seconds"])]
    if "sklearn" in result:
        sk = result["sklearn"]
        rows += [("scikit-learn CH + DB (in memory)", sk["seconds"]),
                 ("  calinski_harabasz_score", sk["calinski_harabasz_seconds"]),
                 ("  davies_bouldin_score", sk["davies_bouldin_seconds"]),
                 ("  (gather to this process)", sk["gather_seconds"])]
    for name, s in rows:
        print(f"{name:<36}{s:>10.3f}{s / lloyd_s:>10.2f}")
    verdict = "met" if result["meets_target"] else "NOT met"
    print(f"CH+DB / faster Lloyd pass = {ivc_s / lloyd_s:.2f} (target <= 1.5: {verdict})")
    if "sklearn" in result:
        print(f"relative difference to scikit-learn: CH {result['sklearn']['rel_diff_ch']:.1e}, "
              f"DB {result['sklearn']['rel_diff_db']:.1e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
