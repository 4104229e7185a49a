"""K-means side by side: this project's Lloyd engine, dask-ml, scikit-learn and the GEMM limit.

In one run, on the same generated data (default 1M x 200 float32, a mixture of
100 Gaussians, persisted on a 2-worker x 1-thread LocalCluster on 127.0.0.1),
with k=100:

* GEMM limit: the N x K x D distance product alone (numpy, both cores, in memory);
* ``cluster_lib.KMeans`` (engine "ivc"): per-iteration time, init time (k-means++
  on a sample) and, run to convergence, the final true inertia;
* dask-ml's KMeans from the same initial centers: per-iteration time;
* scikit-learn's KMeans in memory (lloyd, k-means++, n_init=1): per-iteration time
  and final inertia run to convergence.

Per-iteration times of dask-ml and scikit-learn are (t[max_iter=12] - t[max_iter=2]) / 10,
which leaves out init and final passes.  Prints a table and writes
``benchmarks/results/kmeans.json``.  Runs without the OPENBLAS_CORETYPE override
(see ``benchmarks/_measure.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import blas_info, without_blas_overrides, write_results  # noqa: E402


def make_data(n, d, k, chunk_rows, seed=0):
    import dask.array as da

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)).astype(np.float32) * 2.0
    spread = rng.uniform(0.5, 1.5, k).astype(np.float32)

    def block(block_info=None):
        loc = block_info[None]["array-location"][0]
        r = np.random.default_rng([seed, loc[0]])
        m = loc[1] - loc[0]
        lab = r.integers(0, k, m)
        out = r.standard_normal((m, d), dtype=np.float32)
        out *= spread[lab, None]
        out += centers[lab]
        return out

    chunks = ((chunk_rows,) * (n // chunk_rows) + ((n % chunk_rows,) if n % chunk_rows else ()), (d,))
    return da.map_blocks(block, chunks=chunks, dtype=np.float32)


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def true_inertia(X, centers, chunk=65536):
    from cluster_lib._lloyd import assign_chunk

    mu = X[:chunk].mean(0)
    tot = 0.0
    for s in range(0, X.shape[0], chunk):
        _, dist = assign_chunk(X[s : s + chunk], (centers - mu).astype(np.float32), mu)
        tot += float(dist.astype(np.float64).sum())
    return tot


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--skip-converged", action="store_true", help="skip the runs to convergence")
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "kmeans.json"))
    args = ap.parse_args()

    from dask_ml.cluster import KMeans as DaskMLKMeans
    from distributed import Client, LocalCluster
    from sklearn.cluster import KMeans as SkKMeans
    from threadpoolctl import threadpool_limits

    from cluster_lib import KMeans
    from cluster_lib.metrics import cluster_scores
    from storage import choose_chunk_rows

    warnings.simplefilter("ignore")
    n, d, k = args.rows, args.dims, args.k
    results: dict = {"rows": n, "dims": d, "k": k, "blas_env": env, "blas": blas_info(),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      memory_limit="8GiB", silence_logs=40) as cluster, Client(cluster):
        from cluster_lib._dask_utils import maybe_persist

        X, _ = maybe_persist(make_data(n, d, k, choose_chunk_rows(d)), True)  # persisted, spread evenly
        print(f"data: {n} x {d} float32 ({X.nbytes / 2**20:.0f} MiB), {X.numblocks[0]} chunks, k={k}")
        # The distributed contenders run first, while this process holds no copy of the
        # data: on these VMs an 800 MB copy here slowed the workers' passes by ~40%.
        km = KMeans(k, random_state=0, max_iter=args.iters, tol=0.0).fit(X)
        its = np.array(km.iteration_seconds_)
        ivc_iter = float(np.median(its[1:] if len(its) > 2 else its))
        results["ivc"] = {"iteration_s": ivc_iter, "iterations": its.tolist(), "init_s": km.timings_["init"],
                          "prepare_s": km.timings_["prepare"], "final_pass_s": km.timings_["final_pass"]}
        print(f"ivc: {ivc_iter:.3f} s/iteration, init {km.timings_['init']:.2f} s")
        # exact Calinski-Harabasz + Davies-Bouldin of that clustering, partition-wise
        cluster_scores(X, km.labels_)  # warm-up
        t_scores = min(timed(lambda: cluster_scores(X, km.labels_))[0] for _ in range(3))
        results["scores"] = {"ch_db_s": t_scores, "per_lloyd_iteration": t_scores / ivc_iter}
        print(f"CH + DB: {t_scores:.3f} s ({t_scores / ivc_iter:.2f} Lloyd iterations)")

        # peers start from k random rows, far from converged, so that every iteration runs
        rows = np.sort(np.random.default_rng(1).choice(n, k, replace=False))
        init = X[rows].compute()

        def dml(m):
            return DaskMLKMeans(k, init=init, max_iter=m, tol=0.0, random_state=0).fit(X)

        dml(1)  # warm-up
        t2, m2 = timed(lambda: dml(2))
        t12, m12 = timed(lambda: dml(12))
        dml_iter = (t12 - t2) / max(1, m12.n_iter_ - m2.n_iter_)
        results["dask_ml"] = {"iteration_s": dml_iter, "t_max_iter_2": t2, "t_max_iter_12": t12,
                              "n_iter": [int(m2.n_iter_), int(m12.n_iter_)]}
        print(f"dask-ml: {dml_iter:.3f} s/iteration")

        if not args.skip_converged:
            t_conv, km_conv = timed(lambda: KMeans(k, random_state=0).fit(X))

        Xnp = X.compute()
        # GEMM limit: the N x K x D distance product alone, both cores, in memory; as one
        # product (what the issue quotes) and in cache-sized blocks (stricter: no 400 MB output)
        C = np.ascontiguousarray(Xnp[:: max(1, n // k)][:k].T)
        with threadpool_limits(2):
            Xnp[:1000] @ C
            gemm = min(timed(lambda: Xnp @ C)[0] for _ in range(3))
            out = np.empty((8192, k), np.float32)

            def blocked():
                for s in range(0, n, 8192):
                    e = min(s + 8192, n)
                    np.matmul(Xnp[s:e], C, out=out[: e - s])

            gemm_blocked = min(timed(blocked)[0] for _ in range(3))
        results["gemm_limit_s"] = gemm
        results["gemm_blocked_s"] = gemm_blocked
        print(f"GEMM limit (N x K x D product): {gemm:.3f} s  ({2 * n * d * k / gemm / 1e9:.0f} GFLOP/s); "
              f"in 8192-row blocks {gemm_blocked:.3f} s ({2 * n * d * k / gemm_blocked / 1e9:.0f} GFLOP/s)")

        # scikit-learn in memory
        with threadpool_limits(2):
            SkKMeans(k, init=init, n_init=1, max_iter=1, tol=0.0).fit(Xnp)  # warm-up
            t2 = min(timed(lambda: SkKMeans(k, init=init, n_init=1, max_iter=2, tol=0.0).fit(Xnp))[0]
                     for _ in range(2))
            t12, s12 = timed(lambda: SkKMeans(k, init=init, n_init=1, max_iter=12, tol=0.0).fit(Xnp))
        sk_iter = (t12 - t2) / max(1, s12.n_iter_ - 2)
        results["sklearn"] = {"iteration_s": sk_iter, "n_iter_12": int(s12.n_iter_), "t2": t2, "t12": t12}
        print(f"scikit-learn: {sk_iter:.3f} s/iteration")

        if not args.skip_converged:
            ours = true_inertia(Xnp, km_conv.cluster_centers_)
            with threadpool_limits(2):
                ts, sk = timed(lambda: SkKMeans(k, n_init=1, random_state=0).fit(Xnp))
            theirs = true_inertia(Xnp, sk.cluster_centers_)
            results["converged"] = {
                "ivc": {"seconds": t_conv, "n_iter": km_conv.n_iter_, "inertia": ours,
                        "reported_inertia": km_conv.inertia_},
                "sklearn": {"seconds": ts, "n_iter": int(sk.n_iter_), "inertia": theirs,
                            "reported_inertia": float(sk.inertia_)},
                "inertia_ratio": ours / theirs,
            }
            print(f"converged: ivc {km_conv.n_iter_} iterations {t_conv:.1f} s inertia {ours:.6g}; "
                  f"sklearn {sk.n_iter_} iterations {ts:.1f} s inertia {theirs:.6g}; ratio {ours / theirs:.4f}")

    r = results
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| GEMM limit per iteration (s): one product / in blocks | {gemm:.3f} / {gemm_blocked:.3f} |")
    it = r['ivc']['iteration_s']
    print(f"| ivc Lloyd iteration (s) | {it:.3f} ({gemm / it:.0%} of the GEMM limit, {gemm_blocked / it:.0%} of the blocked one) |")
    print(f"| dask-ml Lloyd iteration (s) | {r['dask_ml']['iteration_s']:.3f} (ivc is {r['dask_ml']['iteration_s'] / r['ivc']['iteration_s']:.1f}x faster) |")
    print(f"| scikit-learn iteration, in memory (s) | {r['sklearn']['iteration_s']:.3f} |")
    print(f"| ivc init, k-means++ on a sample (s) | {r['ivc']['init_s']:.3f} ({r['ivc']['init_s'] / r['ivc']['iteration_s']:.1f} iterations) |")
    print(f"| CH + DB scores (s) | {r['scores']['ch_db_s']:.3f} ({r['scores']['per_lloyd_iteration']:.2f} Lloyd iterations) |")
    if "converged" in r:
        print(f"| final true inertia, ivc / scikit-learn | {r['converged']['inertia_ratio']:.4f} |")
    r["gemm_fraction"] = gemm / r["ivc"]["iteration_s"]
    r["gemm_blocked_fraction"] = gemm_blocked / r["ivc"]["iteration_s"]
    r["speedup_vs_dask_ml"] = r["dask_ml"]["iteration_s"] / r["ivc"]["iteration_s"]
    write_results(args.out, r)


if __name__ == "__main__":
    main()
