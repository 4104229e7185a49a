"""``ivc run`` end to end next to scikit-learn in memory, on the same 1M x 200 rows.

In one run:

* the data: a 1M x 200 float32 mixture of 100 Gaussians whose image paths point into
  a pool of 300 synthetic crops, ingested into a descriptor store;
* ``ivc run`` of k-means (k=100) with scoring (CH, DB, silhouette on 10k rows) and the
  report at its default options (50 crops per cluster, projection and its GIF), on
  the embedded 2-worker LocalCluster: the whole command, cluster start included;
* scikit-learn: ``numpy.load`` + ``KMeans(100, n_init=1)`` + ``calinski_harabasz_score``
  + ``davies_bouldin_score`` in one process.

Each runs in its own process (wall time and peak RSS of its process tree).  The bar:
the job takes at most 1.5x scikit-learn's time.  Writes ``benchmarks/results/job.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import blas_info, run_measured, without_blas_overrides, write_results  # noqa: E402

SKLEARN = textwrap.dedent(
    """
    import sys, time, json, numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
    t = time.perf_counter()
    X = np.load(sys.argv[1])
    km = KMeans(int(sys.argv[2]), n_init=1, random_state=0).fit(X)
    ch = calinski_harabasz_score(X, km.labels_)
    db = davies_bouldin_score(X, km.labels_)
    print(json.dumps({"seconds": time.perf_counter() - t, "n_iter": int(km.n_iter_), "ch": ch, "db": db}))
    """
)


def main() -> None:
    env = without_blas_overrides()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--keep-blas-env", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "job.json"))
    args = ap.parse_args()

    import yaml

    from storage import ingest
    from storage.synthetic import make_crops, make_large_descriptors

    work = Path(tempfile.mkdtemp(prefix="ivc-bench-job-"))
    pool = make_crops(work / "pool", 300, seed=0)
    images = [str((work / "pool" / f"crops/{i:06d}.png").relative_to(work)) for i in range(300)]
    make_large_descriptors(work / "x.npy", args.rows, args.dims, n_clusters=args.k, seed=0,
                           index_path=work / "index.csv", image_pool=images)
    ingest(work / "x.npy", index=work / "index.csv", store=work / "store", name="x")
    spec = {
        "store": "store", "runs": "runs", "descriptors": ["x"],
        "methods": [{"method": "kmeans", "n_clusters": args.k}],
        "scoring": {"silhouette_sample": 10000},
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "6GiB"},
        "random_state": 0,
    }
    (work / "job.yaml").write_text(yaml.safe_dump(spec))
    print(f"data: {args.rows} x {args.dims} float32, k={args.k}, crops from a pool of {len(pool.descriptors) and 300}")

    ivc = run_measured([sys.executable, "-m", "jobs", "run", str(work / "job.yaml")], cwd=HERE.parent)
    run = (work / "runs" / "latest").resolve()
    manifest = json.loads((run / "manifest.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())["results"][0]
    print(f"ivc run: {ivc['seconds']:.1f} s, peak RSS {ivc['peak_rss_MiB']:.0f} MiB, "
          f"{manifest['report']['images_shown']} crops in the report")

    sk = run_measured([sys.executable, "-c", SKLEARN, str(work / "x.npy"), str(args.k)], cwd=HERE.parent)
    sk_out = json.loads(sk["stdout_tail"].strip().splitlines()[-1])
    print(f"scikit-learn: {sk['seconds']:.1f} s (fit+scores {sk_out['seconds']:.1f} s, {sk_out['n_iter']} iterations), "
          f"peak RSS {sk['peak_rss_MiB']:.0f} MiB")
    ratio = ivc["seconds"] / sk["seconds"]
    print("\n| contender | wall time (s) | peak RSS (MiB) | CH | DB |")
    print("|---|---|---|---|---|")
    print(f"| ivc run (k-means + scores + report) | {ivc['seconds']:.1f} | {ivc['peak_rss_MiB']:.0f} | "
          f"{metrics['calinski_harabasz']:.1f} | {metrics['davies_bouldin']:.4f} |")
    print(f"| scikit-learn KMeans + CH + DB | {sk['seconds']:.1f} | {sk['peak_rss_MiB']:.0f} | "
          f"{sk_out['ch']:.1f} | {sk_out['db']:.4f} |")
    print(f"\nivc run / scikit-learn = {ratio:.2f} (bar: <= 1.5)")
    result = {
        "rows": args.rows, "dims": args.dims, "k": args.k, "ivc": ivc, "sklearn": {**sk, **sk_out},
        "ivc_timings": manifest["timings"], "ivc_metrics": {k: metrics[k] for k in ("calinski_harabasz",
                                                                                    "davies_bouldin", "silhouette")},
        "report": manifest["report"], "ratio": ratio, "blas_env": env, "blas": blas_info(),
    }
    write_results(args.out, result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
