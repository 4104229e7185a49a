"""K-means on data larger than the workers' memory: streamed from the zarr store on every pass.

For each size (default 1M and 4M rows x 200 float32, that is 0.8 and 3.2 GB),
the data is generated chunk by chunk, ingested into a descriptor store, and
clustered (k=100, a few Lloyd iterations) on a 2-worker LocalCluster whose
memory limit (default 512 MiB per worker) is below the data's size.  The whole
process tree (this process, the nannies and the workers) is sampled for its
peak RSS: it must stay bounded by the workers' limits, not grow with the rows.

Prints a table and writes ``benchmarks/results/kmeans_streaming.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import PeakRSS, blas_info, without_blas_overrides, write_results  # noqa: E402


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--worker-memory", default="512MiB")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "kmeans_streaming.json"))
    args = ap.parse_args()

    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    from cluster_lib import KMeans
    from storage import DescriptorStore, ingest
    from storage.synthetic import make_large_descriptors

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ivc-bench-stream-"))
    results = {"dims": args.dims, "k": args.k, "iters": args.iters, "worker_memory": args.worker_memory,
               "blas_env": env, "blas": blas_info(), "runs": []}
    limit_total = 2 * parse_bytes(args.worker_memory)
    for n in args.rows:
        data = work / f"x{n}.npy"
        index = work / f"x{n}.csv"
        store = work / f"store{n}"
        make_large_descriptors(data, n, args.dims, n_clusters=args.k, seed=0, index_path=index,
                               image_pool=[f"pool/{i}.png" for i in range(100)])
        ingest(data, index=index, store=store, name="x")
        data.unlink()
        nbytes = n * args.dims * 4
        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                          memory_limit=args.worker_memory, silence_logs=40) as cluster, Client(cluster):
            X = DescriptorStore(store)["x"].vectors()
            with PeakRSS(os.getpid(), interval=0.05) as peak:
                t = time.perf_counter()
                km = KMeans(args.k, random_state=0, max_iter=args.iters, tol=0.0, persist="auto").fit(X)
                seconds = time.perf_counter() - t
        run = {
            "rows": n, "data_MiB": nbytes / 2**20, "worker_limit_total_MiB": limit_total / 2**20,
            "peak_tree_rss_MiB": peak.peak / 2**20, "seconds": seconds,
            "iteration_s": km.iteration_seconds_, "persisted": False if nbytes > limit_total / 2 else True,
            "inertia": km.inertia_,
        }
        results["runs"].append(run)
        print(f"{n} rows ({nbytes / 2**20:.0f} MiB): peak RSS of the process tree {peak.peak / 2**20:.0f} MiB "
              f"(worker limits {limit_total / 2**20:.0f} MiB), {seconds:.1f} s, "
              f"{sum(km.iteration_seconds_) / len(km.iteration_seconds_):.2f} s/iteration")
        shutil.rmtree(store, ignore_errors=True)
        index.unlink(missing_ok=True)

    print("\n| rows | data (MiB) | worker limits (MiB) | peak RSS, whole tree (MiB) | s/iteration |")
    print("|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['rows']} | {r['data_MiB']:.0f} | {r['worker_limit_total_MiB']:.0f} | "
              f"{r['peak_tree_rss_MiB']:.0f} | {sum(r['iteration_s']) / len(r['iteration_s']):.2f} |")
    write_results(args.out, results)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
