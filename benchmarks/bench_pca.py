"""PCA side by side: this project's covariance solver, dask-ml, scikit-learn and the X^T X GEMM limit.

In one run, on the same generated data (default 1M x 512 float32, rank-32 signal
plus anisotropic noise plus a mean offset of 50, generated chunk by chunk on a
2-worker x 1-thread LocalCluster on 127.0.0.1 and persisted there), reducing
512 -> 200 dims:

* GEMM limit: the per-chunk ``X^T X`` products alone (numpy ``b.T @ b``, which
  BLAS runs as a syrk), (a) the data's first chunk on one core in this process,
  before the cluster starts, times chunks / 2 workers, and (b) measured on the
  cluster as a map over the chunks and a tree sum of the d x d results; next to
  (a), our per-chunk kernel (centre + syrk + sums) timed the same way;
* ``cluster_lib.PCA`` (solver "covariance"): fit, then ``transform`` persisted;
* ``cluster_lib.PCA`` on float64 data (the accuracy reference; GEMMs in float64);
* ``cluster_lib.PCA(solver="dask-ml")``: dask-ml's exact TSQR SVD behind our API;
* dask-ml's PCA used directly, ``svd_solver="tsqr"`` (exact; its ``transform``
  works) and ``svd_solver="auto"`` (picks randomized for this shape, but stays
  clear of dask-ml #1023 because ``svd_solver`` is not literally "randomized");
* scikit-learn's PCA in memory in this process (BLAS on both cores):
  ``svd_solver="covariance_eigh"`` (what "auto" picks for this shape) and
  ``"randomized"``.

Accuracy: max relative error of the 200 explained variances against the
float64 reference, and the largest distance between the first 10 components.

Run it without this machine's OpenBLAS core-type overrides, which pin numpy to
a slower kernel (the script re-executes itself without them anyway, unless
``--keep-blas-env``, and records what it dropped)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_pca.py

Options: ``--rows N --dims D --components K --repeats R --skip-sklearn``.
Prints a table and writes ``benchmarks/results/pca.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import blas_info, without_blas_overrides  # noqa: E402

RANK = 32
OFFSET = 50.0


def make_data(n: int, d: int, chunk_rows: int, seed: int = 0):
    """Low-rank signal + anisotropic noise + offset, generated per chunk where it will live."""
    import dask.array as da

    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, RANK)))[0].T.astype(np.float32)
    scales = np.geomspace(20.0, 2.0, RANK).astype(np.float32)
    noise = np.linspace(0.2, 1.0, d).astype(np.float32)
    offset = (OFFSET + rng.standard_normal(d)).astype(np.float32)

    def block(block_info=None):
        start, stop = block_info[None]["array-location"][0]
        r = np.random.default_rng([seed, start])
        out = (r.standard_normal((stop - start, RANK), dtype=np.float32) * scales) @ basis
        out += r.standard_normal((stop - start, d), dtype=np.float32) * noise
        out += offset
        return out

    rows = (chunk_rows,) * (n // chunk_rows) + ((n % chunk_rows,) if n % chunk_rows else ())
    return da.map_blocks(block, chunks=(rows, (d,)), dtype=np.float32)


def _syrk(b: np.ndarray) -> np.ndarray:
    return b.T @ b


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    return np.sum(parts, axis=0)


def timed(f, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return times, out


def accuracy(ev: np.ndarray, comps: np.ndarray, ref) -> dict:
    k = min(len(ev), len(ref.explained_variance_))
    return {
        "ev_max_rel_err": float(np.max(np.abs(ev[:k] / ref.explained_variance_[:k] - 1))),
        "top10_components_max_abs_diff": float(np.max(np.abs(comps[:10] - ref.components_[:10]))),
    }


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--components", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "pca.json"))
    args = ap.parse_args()

    import dask
    from dask_ml.decomposition import PCA as DaskMLPCA
    from distributed import Client, LocalCluster, wait
    from sklearn.decomposition import PCA as SkPCA
    from threadpoolctl import threadpool_limits

    from cluster_lib._dask_utils import row_blocks, tree_reduce
    from cluster_lib._pca import PCA
    from storage import choose_chunk_rows

    warnings.simplefilter("ignore")
    n, d, k, R = args.rows, args.dims, args.components, args.repeats
    chunk_rows = choose_chunk_rows(d)
    results: dict = {
        "rows": n, "dims": d, "components": k, "chunk_rows": chunk_rows, "repeats": R,
        "blas_env": env, "blas": blas_info(),
        "env": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "versions": {m: __import__(m).__version__ for m in ("numpy", "dask", "distributed", "dask_ml", "sklearn")},
        "methods": {},
    }
    rows: list[tuple[str, list[float], dict]] = []

    def record(name: str, times: list[float], **extra) -> None:
        entry = {"seconds": times, "min_s": min(times), "median_s": float(np.median(times)), **extra}
        results["methods"][name] = entry
        rows.append((name, times, extra))
        print(f"  {name}: min {min(times):.2f} s  {extra}", flush=True)

    # GEMM limit (a): one chunk on one core, here, before the cluster starts
    from cluster_lib._pca import chunk_stats

    with dask.config.set(scheduler="sync"):
        b = make_data(chunk_rows, d, chunk_rows).compute()  # the data's first chunk
    with threadpool_limits(1):
        one = min(timed(lambda: _syrk(b), 10)[0])
        kernel = min(timed(lambda: chunk_stats(b), 10)[0])
    del b
    full_chunks = n / chunk_rows
    limit_a = one * full_chunks / 2
    results["gemm_one_chunk_one_core_s"] = one
    results["chunk_stats_one_chunk_one_core_s"] = kernel
    results["gemm_limit_s"] = limit_a
    print(f"X^T X of one {chunk_rows} x {d} chunk, one core: {one * 1e3:.1f} ms "
          f"({chunk_rows * d * d / one / 1e9:.0f} GFLOP/s as syrk); ivc chunk kernel: {kernel * 1e3:.1f} ms",
          flush=True)
    record("GEMM limit: one-core chunk syrk x chunks / 2", [limit_a])
    record("ivc chunk kernel (centre + syrk + sums): one core x chunks / 2", [kernel * full_chunks / 2])

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="8GiB", silence_logs=40) as cluster, \
            Client(cluster) as client:
        results["worker_blas"] = list(client.run(blas_info).values())
        X = make_data(n, d, chunk_rows).persist()
        wait(X)
        print(f"data: {n} x {d} float32 ({X.nbytes / 2**20:.0f} MiB), {X.numblocks[0]} chunks "
              f"of {chunk_rows} rows; PCA {d} -> {k}", flush=True)

        # GEMM limit (b): the per-chunk products alone, on the cluster
        def gemm_pass():
            parts = [dask.delayed(_syrk, pure=False)(blk) for blk in row_blocks(X)]
            return dask.compute(tree_reduce(parts, _sum))[0]

        record("GEMM on the cluster: per-chunk X^T X + tree sum", timed(gemm_pass, R)[0])
        limit_b = results["methods"]["GEMM on the cluster: per-chunk X^T X + tree sum"]["min_s"]

        # float64 reference (also a timing: GEMMs in float64)
        X64 = X.astype(np.float64).persist()
        wait(X64)
        t64, ref = timed(lambda: PCA(k).fit(X64), 1)
        del X64
        record("ivc PCA covariance, float64 data (reference)", t64)

        # ours
        fit_times, pca = timed(lambda: PCA(k).fit(X), R)

        tr_times = []
        for _ in range(R):
            t = time.perf_counter()
            Z = pca.transform(X).persist()
            wait(Z)
            tr_times.append(time.perf_counter() - t)
            del Z  # release, so that the next repeat computes its (same-named) keys again
            time.sleep(0.5)
        record("ivc PCA covariance fit", fit_times,
               **accuracy(pca.explained_variance_, pca.components_, ref),
               x_gemm_limit_a=round(min(fit_times) / limit_a, 2),
               x_gemm_on_cluster_b=round(min(fit_times) / limit_b, 2))
        record("ivc PCA transform (persisted)", tr_times)

        t, p = timed(lambda: PCA(k, solver="dask-ml").fit(X), 1)
        record("ivc PCA solver='dask-ml' fit (tsqr + mean pass)", t,
               **accuracy(p.explained_variance_, p.components_, ref))

        # dask-ml directly
        for solver in ("tsqr", "auto"):
            t, est = timed(lambda: DaskMLPCA(n_components=k, svd_solver=solver, random_state=0).fit(X), 1)
            comps = np.asarray(est.components_)
            # dask-ml's own signs; align to ours to compare
            signs = np.sign(np.sum(comps * ref.components_, axis=1))[:, None]
            record(f"dask-ml PCA svd_solver={solver!r} fit", t,
                   **accuracy(np.asarray(est.explained_variance_), comps * signs, ref))

            def dml_transform():
                Z = est.transform(X).persist()
                wait(Z)
                return Z

            t, Z = timed(dml_transform, 1)
            del Z
            record(f"dask-ml PCA svd_solver={solver!r} transform (persisted)", t)

        if not args.skip_sklearn:
            Xnp = X.compute()
            for solver in ("covariance_eigh", "randomized"):
                t, sk = timed(lambda: SkPCA(k, svd_solver=solver, random_state=0).fit(Xnp), 1)
                record(f"scikit-learn PCA svd_solver={solver!r}, in memory, 2 threads", t,
                       **accuracy(sk.explained_variance_, sk.components_, ref))
            del Xnp

    print()
    print(f"{'method':<66} {'min s':>7} {'x (a)':>6} {'x (b)':>6} {'ev rel err':>10} {'comp diff':>9}")
    for name, times, extra in rows:
        err = extra.get("ev_max_rel_err")
        cd = extra.get("top10_components_max_abs_diff")
        print(f"{name:<66} {min(times):>7.2f} {min(times) / limit_a:>6.2f} {min(times) / limit_b:>6.2f} "
              f"{'' if err is None else f'{err:.1e}':>10} {'' if cd is None else f'{cd:.1e}':>9}")
    print("x (a): / GEMM limit (a), one-core chunk syrk x chunks / 2;  x (b): / GEMM pass measured on the cluster")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
