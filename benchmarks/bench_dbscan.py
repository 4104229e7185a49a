"""DBSCAN side by side: this project's sampled DBSCAN against scikit-learn's, and alone at scale.

In one run, on a mixture of 100 Gaussians in 200 dims (float32; centres drawn
from N(0, 4 I), spreads in [0.5, 1.5], generated chunk by chunk from seeds):

(a) at 50k rows, in memory: ``cluster_lib.DBSCAN`` (``eps="auto"``, euclidean and
    cosine) and scikit-learn's DBSCAN with the same eps and min_samples, each in a
    subprocess of its own: wall time, fit time, peak RSS of its process tree,
    clusters, noise fraction, adjusted Rand index between the two and against the
    true components;
(b) at 1M rows, persisted on a 2-worker x 1-thread LocalCluster (127.0.0.1,
    dashboard off): ``cluster_lib.DBSCAN`` alone, its labelling pass next to one
    k-means Lloyd pass with k=100 on the same data in the same run, the ratio,
    and the peak RSS of the whole process tree (this process and the cluster's).

Prints a Markdown table and writes ``benchmarks/results/dbscan.json``. Runs
without the OPENBLAS_CORETYPE override (see ``benchmarks/_measure.py``).
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

from benchmarks._measure import PeakRSS, blas_info, run_measured, without_blas_overrides, write_results  # noqa: E402

CENTER_SCALE = 2.0
SPREADS = (0.5, 1.5)


def mixture(n: int, d: int, k: int, chunk_rows: int, seed: int = 0):
    """A Gaussian mixture as lazy dask arrays: rows (float32) and true component ids, chunk by chunk."""
    import dask.array as da

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)).astype(np.float32) * CENTER_SCALE
    spread = rng.uniform(*SPREADS, k).astype(np.float32)

    def draw(loc):
        r = np.random.default_rng([seed, loc[0]])
        return r, r.integers(0, k, loc[1] - loc[0])

    def rows(block_info=None):
        r, lab = draw(block_info[None]["array-location"][0])
        out = r.standard_normal((lab.size, d), dtype=np.float32)
        out *= spread[lab, None]
        out += centers[lab]
        return out

    def labels(block_info=None):
        return draw(block_info[None]["array-location"][0])[1]

    sizes = (chunk_rows,) * (n // chunk_rows) + ((n % chunk_rows,) if n % chunk_rows else ())
    X = da.map_blocks(rows, chunks=(sizes, (d,)), dtype=np.float32)
    y = da.map_blocks(labels, chunks=(sizes,), dtype=np.int64)
    return X, y


def contender(args: argparse.Namespace) -> None:
    """Subprocess mode: fit one contender on ``--data``, save its labels, print a JSON line."""
    from sklearn.cluster import DBSCAN as SkDBSCAN

    from cluster_lib._dbscan import DBSCAN

    X = np.load(args.data)
    eps = args.eps if args.eps == "auto" else float(args.eps)
    t = time.perf_counter()
    if args.contender == "sklearn":
        labels = SkDBSCAN(eps=eps, min_samples=args.min_samples, metric=args.metric).fit(X).labels_
        out = {}
    else:
        db = DBSCAN(eps=eps, min_samples=args.min_samples, metric=args.metric, random_state=0).fit(X)
        labels = db.labels_
        out = {"eps_input": db.eps_input_, "eps_": db.eps_, "min_samples_": db.min_samples_,
               "label_radius_over_eps": db.label_radius_ / db.eps_, "cover_radius_over_eps": db.cover_radius_ / db.eps_,
               "n_components": int(db.components_.shape[0]), "n_core_in_sample": int(db.core_sample_indices_.size),
               "timings": db.timings_}
    out["fit_s"] = time.perf_counter() - t
    np.save(args.labels_out, labels.astype(np.int32))
    print(json.dumps(out))


def _warm_up() -> None:
    """Run the labelling and Lloyd kernels once on tiny input (numba loads them on first use)."""
    from cluster_lib._dbscan import _label_block
    from cluster_lib._lloyd import lloyd_chunk

    X = np.ones((8, 4), np.float32)
    C = np.zeros((2, 4), np.float32)
    mu = np.zeros(4, np.float32)
    lloyd_chunk(X, C, mu)
    _label_block(X, C, mu, C.astype(np.float64), np.zeros(2, np.int32), 1.0, 1e-5,
                 np.empty(0, np.int64), np.empty(0, np.int32))


def small_run(args: argparse.Namespace, tmp: Path) -> dict:
    from sklearn.metrics import adjusted_rand_score

    X, y = mixture(args.small_rows, args.dims, args.k, 65536, seed=0)
    X, y = X.compute(), y.compute()
    data = tmp / "small.npy"
    np.save(data, X)
    del X
    res: dict = {"rows": args.small_rows, "dims": args.dims, "components": args.k, "min_samples": args.min_samples}
    base = [sys.executable, str(Path(__file__).resolve()), "--data", str(data), "--min-samples", str(args.min_samples)]
    if "--keep-blas-env" in sys.argv:
        base.append("--keep-blas-env")
    for metric in ("euclidean", "cosine"):
        row: dict = {}
        for who in ("ivc", "sklearn"):
            eps = "auto" if who == "ivc" else repr(row["ivc"]["eps_input"])
            out = tmp / f"{who}-{metric}.npy"
            m = run_measured([*base, "--contender", who, "--metric", metric, "--eps", eps, "--labels-out", str(out)])
            info = json.loads(m["stdout_tail"].strip().splitlines()[-1])
            labels = np.load(out)
            info.update(wall_s=m["seconds"], peak_rss_MiB=m["peak_rss_MiB"], n_clusters=int(labels.max()) + 1,
                        noise_fraction=float(np.mean(labels == -1)), ari_vs_truth=adjusted_rand_score(y, labels))
            row[who] = info
            row[f"{who}_labels"] = labels
            print(f"(a) {metric:9s} {who:8s} fit {info['fit_s']:.2f} s, peak RSS {info['peak_rss_MiB']:.0f} MiB, "
                  f"{info['n_clusters']} clusters, noise {info['noise_fraction']:.3f}, "
                  f"ARI vs truth {info['ari_vs_truth']:.3f}", flush=True)
        ours, theirs = row.pop("ivc_labels"), row.pop("sklearn_labels")
        row["ari_ivc_vs_sklearn"] = adjusted_rand_score(theirs, ours)
        row["noise_agreement"] = float(np.mean((ours == -1) == (theirs == -1)))
        print(f"(a) {metric}: ARI(ivc, sklearn) = {row['ari_ivc_vs_sklearn']:.4f}", flush=True)
        res[metric] = row
    return res


def large_run(args: argparse.Namespace) -> dict:
    from distributed import Client, LocalCluster
    from sklearn.metrics import adjusted_rand_score

    from cluster_lib import KMeans
    from cluster_lib._dask_utils import maybe_persist
    from cluster_lib._dbscan import DBSCAN
    from storage import choose_chunk_rows

    n, d = args.large_rows, args.dims
    res: dict = {"rows": n, "dims": d, "components": args.k, "min_samples": args.min_samples,
                 "cluster": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": args.memory_limit}}
    with PeakRSS(os.getpid()) as rss, \
            LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                         memory_limit=args.memory_limit, silence_logs=40) as cluster, \
            Client(cluster) as client:
        X, y = mixture(n, d, args.k, choose_chunk_rows(d), seed=1)
        X, _ = maybe_persist(X, True)
        client.run(_warm_up)  # load the compiled kernels in every worker before timing passes
        print(f"(b) data: {n} x {d} float32 ({X.nbytes / 2**20:.0f} MiB), {X.numblocks[0]} chunks", flush=True)
        for metric in args.large_metrics:
            t = time.perf_counter()
            db = DBSCAN(eps="auto", min_samples=args.min_samples, metric=metric, random_state=0,
                        persist=True).fit(X)
            fit_s = time.perf_counter() - t
            labels = db.labels_.compute()
            res[metric] = {
                "fit_s": fit_s, "timings": db.timings_, "label_pass_s": db.timings_["label"],
                "eps_input": db.eps_input_, "eps_": db.eps_, "min_samples_": db.min_samples_,
                "n_clusters": db.n_clusters_, "noise_fraction": db.noise_fraction_,
                "n_core_in_sample": int(db.core_sample_indices_.size), "n_components": int(db.components_.shape[0]),
                "label_radius_over_eps": db.label_radius_ / db.eps_,
                "ari_vs_truth": adjusted_rand_score(y.compute(), labels),
            }
            del labels
            print(f"(b) {metric}: fit {fit_s:.2f} s, labelling pass {db.timings_['label']:.3f} s, "
                  f"{db.n_clusters_} clusters, noise {db.noise_fraction_:.3f}, "
                  f"ARI vs truth {res[metric]['ari_vs_truth']:.3f}", flush=True)
            del db
        km = KMeans(100, max_iter=4, tol=0.0, random_state=0, persist=True).fit(X)
        its = km.iteration_seconds_
        lloyd = float(np.median(its[1:]))  # the first pass also warms up the workers' kernels
        res["lloyd_pass_s"] = lloyd
        res["lloyd_passes_s"] = its
        for metric in args.large_metrics:
            res[metric]["label_over_lloyd"] = res[metric]["label_pass_s"] / lloyd
        print(f"(b) k-means Lloyd pass, k=100: {lloyd:.3f} s", flush=True)
    res["peak_rss_MiB"] = rss.peak / 2**20
    return res


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small-rows", type=int, default=50_000)
    ap.add_argument("--large-rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--k", type=int, default=100, help="mixture components")
    ap.add_argument("--min-samples", type=int, default=10)
    ap.add_argument("--memory-limit", default="2GiB", help="per worker, for (b)")
    ap.add_argument("--large-metrics", nargs="+", default=["euclidean", "cosine"])
    ap.add_argument("--skip-small", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "dbscan.json"))
    # subprocess mode (one contender of part (a))
    ap.add_argument("--contender", choices=["ivc", "sklearn"])
    ap.add_argument("--data")
    ap.add_argument("--metric", default="euclidean")
    ap.add_argument("--eps", default="auto")
    ap.add_argument("--labels-out")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.contender:
        contender(args)
        return

    results: dict = {"blas_env": env, "blas": blas_info(),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "data": {"center_scale": CENTER_SCALE, "spreads": SPREADS}}
    with tempfile.TemporaryDirectory(prefix="bench_dbscan_") as tmp:
        if not args.skip_small:
            results["small"] = small_run(args, Path(tmp))
    if not args.skip_large:
        results["large"] = large_run(args)

    print()
    print("| part | metric | contender | fit (s) | peak RSS (MiB) | clusters | noise | ARI vs truth | ARI ivc vs sklearn |")
    print("|---|---|---|---|---|---|---|---|---|")
    s = results.get("small")
    if s:
        for metric in ("euclidean", "cosine"):
            for who in ("ivc", "sklearn"):
                r = s[metric][who]
                ari = f"{s[metric]['ari_ivc_vs_sklearn']:.4f}" if who == "ivc" else ""
                print(f"| (a) {s['rows']:,} x {s['dims']} | {metric} | {who} | {r['fit_s']:.2f} | "
                      f"{r['peak_rss_MiB']:.0f} | {r['n_clusters']} | {r['noise_fraction']:.3f} | "
                      f"{r['ari_vs_truth']:.3f} | {ari} |")
    g = results.get("large")
    if g:
        for metric in args.large_metrics:
            r = g[metric]
            print(f"| (b) {g['rows']:,} x {g['dims']} | {metric} | ivc | {r['fit_s']:.2f} | {g['peak_rss_MiB']:.0f} "
                  f"(whole tree, whole part) | {r['n_clusters']} | {r['noise_fraction']:.3f} | {r['ari_vs_truth']:.3f} | |")
        print()
        print("| (b) measure | value |")
        print("|---|---|")
        print(f"| k-means Lloyd pass, k=100 (s) | {g['lloyd_pass_s']:.3f} |")
        for metric in args.large_metrics:
            r = g[metric]
            print(f"| DBSCAN labelling pass, {metric}, {r['n_components']} core points (s) | "
                  f"{r['label_pass_s']:.3f} ({r['label_over_lloyd']:.1f} Lloyd passes) |")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
