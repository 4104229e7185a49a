"""Agglomerative clustering (ward) side by side: this project's two-stage estimator and scikit-learn's.

In one run:

(a) at each ``--rows`` (default 20k and 50k) x 200 float32, a mixture of ``--k``
    Gaussians written by ``storage.synthetic.make_large_descriptors``:
    ``cluster_lib`` AgglomerativeClustering (ward, k clusters, ``--n-micro``
    micro-clusters, numpy input, dask's threaded scheduler) and scikit-learn's
    AgglomerativeClustering (ward, no connectivity), each in its own subprocess
    (``benchmarks._measure.run_measured``) so that each peak RSS is its own;
    wall time, peak RSS, adjusted Rand between them and against the mixture's
    truth.  scikit-learn's ward needs about ``n^2 * 8`` bytes (the condensed
    distance matrix and scipy's working copy of it, 2 x n^2/2 doubles); it is
    run only where that is under half the memory available, and recorded as
    skipped otherwise (50k rows: ~20 GB).
(b) ours alone at ``--large-rows`` (default 1M) x 200 float32, ingested into a
    descriptor store and streamed from zarr on a 2-worker x 1-thread LocalCluster
    (127.0.0.1, no dashboard, ``--worker-memory`` each): wall time and the peak
    RSS of the whole process tree (this process, scheduler, nannies, workers);
    the target is under 3 GB.

Prints a Markdown table and writes ``benchmarks/results/agglomerative.json``.
Runs without the OPENBLAS_CORETYPE override (see ``benchmarks/_measure.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import PeakRSS, blas_info, run_measured, without_blas_overrides, write_results  # noqa: E402


def contender(args: argparse.Namespace) -> None:
    """Child process: load the data, fit one contender, save its labels and timings."""
    import warnings

    warnings.simplefilter("ignore")
    from sklearn.cluster import AgglomerativeClustering as SkAgglomerative

    from cluster_lib._agglomerative import AgglomerativeClustering

    X = np.load(args.data)
    t = time.perf_counter()
    if args.contender == "sklearn":
        labels = SkAgglomerative(args.k, linkage="ward").fit(X).labels_
        extra: dict = {}
    else:
        model = AgglomerativeClustering(args.k, linkage="ward", n_micro=args.n_micro, random_state=0).fit(X)
        labels = model.labels_
        extra = {"timings": model.timings_, "n_leaves": model.n_leaves_,
                 "micro_iterations": model.micro_kmeans_.n_iter_ if model.micro_kmeans_ else 0}
    seconds = time.perf_counter() - t
    np.save(args.labels, np.asarray(labels, dtype=np.int32))
    Path(args.labels).with_suffix(".json").write_text(json.dumps({"fit_s": seconds, **extra}))


def truth_of(index: Path) -> np.ndarray:
    import pandas as pd

    return pd.read_csv(index, usecols=["cluster"])["cluster"].to_numpy()


def compare(n: int, args: argparse.Namespace, work: Path) -> dict:
    """Part (a): both contenders at n rows, each in a subprocess."""
    import psutil
    from sklearn.metrics import adjusted_rand_score

    from storage.synthetic import make_large_descriptors

    data, index = work / f"cmp{n}.npy", work / f"cmp{n}.csv"
    make_large_descriptors(data, n, args.dims, n_clusters=args.k, seed=0, index_path=index)
    truth = truth_of(index)
    out: dict = {"rows": n, "data_MiB": n * args.dims * 4 / 2**20}
    need = n * n * 8  # condensed distances + scipy's copy: 2 x n^2 / 2 doubles
    avail = psutil.virtual_memory().available
    labels = {}
    for name in ("ivc", "sklearn"):
        if name == "sklearn" and need > 0.5 * avail:
            out[name] = {"skipped": f"needs ~{need / 2**30:.1f} GiB (n^2 * 8 bytes), "
                                    f"{avail / 2**30:.1f} GiB available"}
            print(f"  {n} rows {name}: skipped ({out[name]['skipped']})")
            continue
        lab_path = work / f"labels-{name}-{n}.npy"
        argv = [sys.executable, str(Path(__file__).resolve()), "--contender", name, "--data", str(data),
                "--labels", str(lab_path), "--k", str(args.k), "--n-micro", str(args.n_micro)]
        m = run_measured(argv, cwd=HERE.parent, timeout=args.timeout)
        m.pop("stdout_tail", None)
        m.update(json.loads(lab_path.with_suffix(".json").read_text()))
        labels[name] = np.load(lab_path)
        m["ari_vs_truth"] = float(adjusted_rand_score(truth, labels[name]))
        out[name] = m
        print(f"  {n} rows {name}: {m['seconds']:.1f} s (fit {m['fit_s']:.1f} s), peak RSS "
              f"{m['peak_rss_MiB']:.0f} MiB, ARI vs truth {m['ari_vs_truth']:.4f}")
    if len(labels) == 2:
        out["ari_ivc_vs_sklearn"] = float(adjusted_rand_score(labels["sklearn"], labels["ivc"]))
        print(f"  {n} rows: ARI ivc vs sklearn {out['ari_ivc_vs_sklearn']:.4f}")
    data.unlink()
    index.unlink()
    return out


def large(args: argparse.Namespace, work: Path) -> dict:
    """Part (b): ours alone on a store-backed dask array, on a bounded LocalCluster."""
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster
    from sklearn.metrics import adjusted_rand_score

    from cluster_lib._agglomerative import AgglomerativeClustering
    from storage import DescriptorStore, ingest
    from storage.synthetic import make_large_descriptors

    n = args.large_rows
    data, index, store = work / "large.npy", work / "large.csv", work / "store"
    t = time.perf_counter()
    make_large_descriptors(data, n, args.dims, n_clusters=args.k, seed=1, index_path=index,
                           image_pool=[f"pool/{i}.png" for i in range(100)])
    ingest(data, index=index, store=store, name="x")
    truth = truth_of(index)
    data.unlink()
    index.unlink()
    prep = time.perf_counter() - t
    print(f"  {n} rows: generated and ingested in {prep:.1f} s")
    limit_total = 2 * parse_bytes(args.worker_memory)
    with PeakRSS(os.getpid(), interval=0.05) as peak:
        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                          memory_limit=args.worker_memory, silence_logs=40) as cluster, Client(cluster):
            X = DescriptorStore(store)["x"].vectors()
            t = time.perf_counter()
            model = AgglomerativeClustering(args.k, linkage="ward", n_micro=args.n_micro, random_state=0).fit(X)
            fit_s = time.perf_counter() - t
            labels = model.labels_.compute()
            total_s = time.perf_counter() - t
    shutil.rmtree(store, ignore_errors=True)
    km = model.micro_kmeans_
    out = {
        "rows": n, "data_MiB": n * args.dims * 4 / 2**20, "worker_memory": args.worker_memory,
        "worker_limit_total_MiB": limit_total / 2**20, "peak_tree_rss_MiB": peak.peak / 2**20,
        "fit_s": fit_s, "fit_and_labels_s": total_s, "timings": model.timings_,
        "micro_iterations": km.n_iter_, "micro_iteration_s": km.iteration_seconds_,
        "micro_init_s": km.timings_.get("init"), "n_leaves": model.n_leaves_,
        # KMeans' persist="auto" rule: persisted when the data takes under half the workers' memory
        "persisted": bool(n * args.dims * 4 <= limit_total / 2),
        "ari_vs_truth": float(adjusted_rand_score(truth, labels)),
        "cluster_sizes": np.bincount(labels).tolist(),
    }
    print(f"  {n} rows ivc: fit {fit_s:.1f} s, + labels {total_s:.1f} s, peak RSS of the process tree "
          f"{out['peak_tree_rss_MiB']:.0f} MiB, ARI vs truth {out['ari_vs_truth']:.4f}")
    return out


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[20_000, 50_000], help="sizes of part (a)")
    ap.add_argument("--large-rows", type=int, default=1_000_000, help="size of part (b); 0 skips it")
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--k", type=int, default=10, help="mixture components and clusters")
    ap.add_argument("--n-micro", type=int, default=1000)
    ap.add_argument("--worker-memory", default="1GiB")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "agglomerative.json"))
    # the subprocess side of part (a)
    ap.add_argument("--contender", choices=["ivc", "sklearn"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--labels", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.contender:
        contender(args)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ivc-bench-agglo-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"dims": args.dims, "k": args.k, "n_micro": args.n_micro, "linkage": "ward",
                     "blas_env": env, "blas": blas_info(),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "load_avg_at_start": os.getloadavg()},
                     "compare": [], "large": None}
    print("(a) ours vs scikit-learn, each in a subprocess")
    for n in args.rows:
        results["compare"].append(compare(n, args, work))
    if args.large_rows:
        print(f"(b) ours alone, {args.large_rows} rows streamed from a zarr store on 2 workers x "
              f"{args.worker_memory}")
        results["large"] = large(args, work)

    print("\n| rows | contender | wall time (s) | peak RSS (MiB) | ARI vs truth | ARI vs scikit-learn |")
    print("|---|---|---|---|---|---|")
    for c in results["compare"]:
        for name in ("ivc", "sklearn"):
            m = c[name]
            if "skipped" in m:
                print(f"| {c['rows']} | {name} | skipped: {m['skipped']} | | | |")
                continue
            vs = f"{c['ari_ivc_vs_sklearn']:.4f}" if name == "ivc" and "ari_ivc_vs_sklearn" in c else ""
            print(f"| {c['rows']} | {name} | {m['seconds']:.1f} | {m['peak_rss_MiB']:.0f} | "
                  f"{m['ari_vs_truth']:.4f} | {vs} |")
    if results["large"]:
        g = results["large"]
        print(f"| {g['rows']} | ivc, 2 workers x {g['worker_memory']} (whole process tree) | "
              f"{g['fit_and_labels_s']:.1f} | {g['peak_tree_rss_MiB']:.0f} | {g['ari_vs_truth']:.4f} | |")
    write_results(args.out, results)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
