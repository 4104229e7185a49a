"""Gaussian mixtures side by side: cluster_lib's distributed EM and scikit-learn's in-memory EM.

In one run, on generated data (a mixture of 10 Gaussians with diagonal covariances,
float32, 200 dims):

(a) 50k rows, in memory: ``cluster_lib.GaussianMixture`` (diag, 10 components,
    numpy input, dask's threaded scheduler on 2 threads, 1 BLAS thread each) and
    ``sklearn.mixture.GaussianMixture`` (diag, 10 components, BLAS on 2 threads),
    each in its own subprocess from the same initial parameters (computed here from
    a k-means fit): wall time of the process, fit time, EM iterations, peak RSS of
    the process tree, and the mean log-likelihood of the data under each fit;
(b) 1M rows on a 2-worker x 1-thread LocalCluster (127.0.0.1, 2 GiB per worker),
    data generated and persisted on the workers: ``cluster_lib.GaussianMixture``
    (diag, 10 components, default k-means init) fit to convergence, its time per EM
    iteration next to the time of one k-means Lloyd pass at k=100 measured in the
    same run (``cluster_lib.KMeans(100, max_iter=5, tol=0)``, median of passes 2-5), the ratio, and the
    peak RSS of the whole process tree (this process and the workers).

Prints a Markdown table and writes ``benchmarks/results/gmm.json``.  Runs without
the OPENBLAS_CORETYPE override (see ``benchmarks/_measure.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import PeakRSS, blas_info, run_measured, without_blas_overrides, write_results

N_COMPONENTS = 10


def mixture(d: int, k: int, seed: int = 0) -> dict:
    """True parameters: centers, per-feature spreads in [0.5, 1.5], log-normal weights."""
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 0.5, k)
    return {"centers": (rng.standard_normal((k, d)) * 0.1).astype(np.float32),
            "spread": rng.uniform(0.5, 1.5, (k, d)).astype(np.float32),
            "weights": w / w.sum()}


def mixture_rows(m: int, params: dict, seed: int, block: int) -> np.ndarray:
    """``m`` float32 rows of the mixture, from their own random stream (seed, block)."""
    r = np.random.default_rng([seed, block])
    k = params["weights"].shape[0]
    lab = r.choice(k, size=m, p=params["weights"])
    out = r.standard_normal((m, params["centers"].shape[1]), dtype=np.float32)
    out *= params["spread"][lab]
    out += params["centers"][lab]
    return out


def dask_mixture(n: int, d: int, chunk_rows: int, params: dict, seed: int = 0):
    import dask.array as da

    def block(block_info=None):
        loc = block_info[None]["array-location"][0]
        return mixture_rows(loc[1] - loc[0], params, seed, loc[0])

    chunks = ((chunk_rows,) * (n // chunk_rows) + ((n % chunk_rows,) if n % chunk_rows else ()), (d,))
    return da.map_blocks(block, chunks=chunks, dtype=np.float32)


def initial_parameters(X: np.ndarray, k: int) -> dict:
    """A common start for both contenders: a k-means fit's clusters as components (diag)."""
    from cluster_lib import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = KMeans(k, random_state=0, max_iter=30).fit(X).labels_
    Xf = X.astype(np.float64)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    means = np.stack([Xf[labels == j].mean(0) for j in range(k)])
    var = np.stack([Xf[labels == j].var(0) for j in range(k)]) + 1e-6
    return {"weights_init": counts / counts.sum(), "means_init": means, "precisions_init": 1.0 / var}


def contender(name: str, data: str, init: str) -> None:
    """Child process: fit one contender on the saved data from the saved start; print one JSON line."""
    from threadpoolctl import threadpool_limits

    X = np.load(data)
    start = dict(np.load(init))
    warnings.simplefilter("ignore")
    if name == "ivc":
        import dask

        from cluster_lib._gmm import GaussianMixture

        # one BLAS thread per dask thread: two dask threads on two cores, like the workers in (b)
        with dask.config.set(scheduler="threads", num_workers=2), threadpool_limits(1):
            t = time.perf_counter()
            gm = GaussianMixture(N_COMPONENTS, covariance_type="diag", **start).fit(X)
            fit_s = time.perf_counter() - t
            score = gm.score(X)
    else:
        from sklearn.mixture import GaussianMixture as SkGaussianMixture

        with threadpool_limits(2):
            t = time.perf_counter()
            gm = SkGaussianMixture(N_COMPONENTS, covariance_type="diag", **start).fit(X)
            fit_s = time.perf_counter() - t
            score = gm.score(X)
    print(json.dumps({"fit_s": fit_s, "n_iter": int(gm.n_iter_), "converged": bool(gm.converged_),
                      "score": float(score), "lower_bound": float(gm.lower_bound_)}))


def bench_small(n: int, d: int, tmp: Path) -> dict:
    params = mixture(d, N_COMPONENTS, seed=1)
    X = mixture_rows(n, params, seed=1, block=0)
    np.save(tmp / "X.npy", X)
    np.savez(tmp / "init.npz", **initial_parameters(X, N_COMPONENTS))
    out: dict = {"rows": n, "dims": d, "n_components": N_COMPONENTS}
    for name in ("ivc", "sklearn"):
        m = run_measured([sys.executable, str(Path(__file__).resolve()), "--contender", name,
                          "--data", str(tmp / "X.npy"), "--init", str(tmp / "init.npz")], cwd=HERE.parent)
        res = json.loads(m.pop("stdout_tail").strip().splitlines()[-1])
        out[name] = {**res, "process_s": m["seconds"], "peak_rss_MiB": m["peak_rss_MiB"]}
        print(f"(a) {name}: fit {res['fit_s']:.2f} s, {res['n_iter']} iterations, "
              f"mean log-likelihood {res['score']:.6f}, peak RSS {m['peak_rss_MiB']:.0f} MiB")
    out["score_difference"] = out["ivc"]["score"] - out["sklearn"]["score"]
    return out


def bench_large(n: int, d: int, lloyd_k: int) -> dict:
    from distributed import Client, LocalCluster
    from sklearn.exceptions import ConvergenceWarning

    from cluster_lib import KMeans
    from cluster_lib._dask_utils import maybe_persist
    from cluster_lib._gmm import GaussianMixture
    from storage import choose_chunk_rows

    params = mixture(d, N_COMPONENTS, seed=2)
    out: dict = {"rows": n, "dims": d, "n_components": N_COMPONENTS, "lloyd_k": lloyd_k,
                 "cluster": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "2GiB"}}
    with PeakRSS(os.getpid(), interval=0.05) as rss, LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
        memory_limit="2GiB", silence_logs=40,
    ) as cluster, Client(cluster):
        X, _ = maybe_persist(dask_mixture(n, d, choose_chunk_rows(d), params, seed=2), True)
        print(f"(b) data: {n} x {d} float32 ({X.nbytes / 2**20:.0f} MiB), {X.numblocks[0]} chunks, persisted")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a few passes are all we time
            km = KMeans(lloyd_k, random_state=0, max_iter=5, tol=0.0).fit(X)
        lloyd = np.array(km.iteration_seconds_)
        lloyd_s = float(np.median(lloyd[1:]) if len(lloyd) > 1 else lloyd[0])
        print(f"(b) k-means Lloyd pass, k={lloyd_k}: {lloyd_s:.3f} s ({np.round(lloyd, 3).tolist()})")
        t = time.perf_counter()
        gm = GaussianMixture(N_COMPONENTS, covariance_type="diag", random_state=0).fit(X)
        wait_for = gm.labels_.persist()  # the final labelling pass, if not already done
        wait_for.sum().compute()
        fit_s = time.perf_counter() - t
        its = np.array(gm.iteration_seconds_)
        em_s = float(np.median(its[1:]) if len(its) > 1 else its[0])
        print(f"(b) EM iteration: {em_s:.3f} s (median of iterations 2-{len(its)}), fit {fit_s:.1f} s, "
              f"{gm.n_iter_} iterations, converged {gm.converged_}")
    out.update({
        "lloyd_pass_s": lloyd_s, "lloyd_iterations_s": lloyd.tolist(),
        "em_iteration_s": em_s, "em_iterations_s": its.tolist(), "ratio_em_to_lloyd": em_s / lloyd_s,
        "fit_s": fit_s, "timings": gm.timings_, "n_iter": int(gm.n_iter_), "converged": bool(gm.converged_),
        "lower_bound": float(gm.lower_bound_), "peak_rss_MiB": rss.peak / 2**20,
    })
    print(f"(b) ratio EM iteration / Lloyd pass: {em_s / lloyd_s:.2f} (target <= 10); "
          f"peak RSS of the process tree {rss.peak / 2**20:.0f} MiB")
    return out


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small-rows", type=int, default=50_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--lloyd-k", type=int, default=100)
    ap.add_argument("--skip-small", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "gmm.json"))
    ap.add_argument("--contender", choices=["ivc", "sklearn"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--init", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.contender:
        contender(args.contender, args.data, args.init)
        return

    results: dict = {"blas_env": env, "blas": blas_info(),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    if not args.skip_small:
        with tempfile.TemporaryDirectory() as tmp:
            results["in_memory"] = bench_small(args.small_rows, args.dims, Path(tmp))
    if not args.skip_large:
        results["distributed"] = bench_large(args.rows, args.dims, args.lloyd_k)

    print()
    print("| measure | value |")
    print("|---|---|")
    if "in_memory" in results:
        a = results["in_memory"]
        for name, label in (("ivc", "cluster_lib"), ("sklearn", "scikit-learn")):
            r = a[name]
            print(f"| (a) {label}, {a['rows'] // 1000}k x {a['dims']} diag k={a['n_components']}: "
                  f"fit s / iterations / process s / peak RSS MiB | {r['fit_s']:.2f} / {r['n_iter']} / "
                  f"{r['process_s']:.1f} / {r['peak_rss_MiB']:.0f} |")
        print(f"| (a) mean log-likelihood, cluster_lib / scikit-learn | {a['ivc']['score']:.6f} / "
              f"{a['sklearn']['score']:.6f} (difference {a['score_difference']:.2e}) |")
    if "distributed" in results:
        b = results["distributed"]
        print(f"| (b) {b['rows'] / 1e6:g}M x {b['dims']}: EM iteration (diag, k={b['n_components']}) s | "
              f"{b['em_iteration_s']:.3f} |")
        print(f"| (b) k-means Lloyd pass (k={b['lloyd_k']}) s | {b['lloyd_pass_s']:.3f} |")
        print(f"| (b) ratio EM iteration / Lloyd pass (target <= 10) | {b['ratio_em_to_lloyd']:.2f} |")
        print(f"| (b) whole fit s (init {b['timings']['init']:.1f} s, {b['n_iter']} EM iterations) | "
              f"{b['fit_s']:.1f} |")
        print(f"| (b) peak RSS, process tree MiB | {b['peak_rss_MiB']:.0f} |")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
