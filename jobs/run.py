"""``ivc run``: fit, score and interpret every descriptor x method of a job spec on Dask.

The map phase runs on the cluster (preprocessing, fitting, labelling, partition-wise
scores, contingency tables); the reduce phase gathers only small results (scores,
sizes, interpretation) and writes the run directory of ../shared/DESIGN.md through
:class:`storage.RunWriter`, which makes it visible in one rename when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from jobs.report import render_report
from jobs.spec import JobSpec, SpecError, load_spec
from storage import DescriptorStore
from storage._runs import RunWriter, new_run_name

__all__ = ["run_job", "RunResult", "connect"]

logger = logging.getLogger(__name__)

NOISE_METHODS = {"dbscan"}


@dataclass(frozen=True)
class RunResult:
    """A finished run: its directory and the rows of its metrics table."""

    path: Path
    results: list[dict[str, Any]]
    seconds: float


@contextlib.contextmanager
def connect(spec: JobSpec, scheduler: str | None = None, client: Any = None,
            echo: Callable[[str], None] = print) -> Iterator[Any]:
    """A ``distributed.Client``: the one given, one to ``scheduler`` (or ``DASK_SCHEDULER_ADDRESS``),
    or one to an embedded LocalCluster on 127.0.0.1 that is closed afterwards."""
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        security = None
        tls = spec.cluster.get("tls")
        if address.startswith("tls://") and tls:
            from distributed.security import Security

            security = Security(tls_ca_file=tls.get("ca_file"), tls_client_cert=tls.get("cert"),
                                tls_client_key=tls.get("key"), require_encryption=True)
        with Client(address, security=security, timeout="30s") as c:
            echo(f"connected to {address}; dashboard {c.dashboard_link}")
            yield c
        return
    opts = spec.cluster
    with LocalCluster(
        n_workers=opts.get("n_workers", 2), threads_per_worker=opts.get("threads_per_worker", 1),
        memory_limit=opts.get("memory_limit", "4GiB"), host="127.0.0.1", dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as c:
        echo(f"embedded LocalCluster: {len(cluster.workers)} workers on 127.0.0.1; dashboard {c.dashboard_link}")
        yield c


@contextlib.contextmanager
def _maybe_performance_report(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    from distributed import performance_report

    with performance_report(filename=str(path)):
        yield


def _fit_one(est: Any, Z: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    est.fit(Z)
    return est.labels_, time.perf_counter() - t


def _score(Z: Any, labels: Any, method: str, spec: JobSpec) -> dict[str, Any]:
    from cluster_lib.metrics import cluster_scores, cluster_sizes, silhouette_score

    noise = -1 if method in NOISE_METHODS else None
    sizes = cluster_sizes(labels)
    n_rows = int(sum(sizes.values()))
    n_noise = int(sizes.get(-1, 0)) if noise is not None else 0
    out: dict[str, Any] = {
        "sizes": {str(k): int(v) for k, v in sorted(sizes.items())},
        "n_clusters": len([k for k in sizes if noise is None or k != noise]),
        "noise_fraction": n_noise / n_rows if n_rows else 0.0,
        "calinski_harabasz": None, "davies_bouldin": None, "silhouette": None, "notes": [],
    }
    try:
        s = cluster_scores(Z, labels, noise_label=noise)
        out["calinski_harabasz"], out["davies_bouldin"] = s.calinski_harabasz, s.davies_bouldin
    except ValueError as e:  # fewer than 2 clusters, say: the table shows why instead of failing the job
        out["notes"].append(f"scores: {e}")
    if spec.silhouette_sample:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sil = silhouette_score(Z, labels, sample_size=spec.silhouette_sample,
                                       random_state=spec.random_state, noise_label=noise)
                out["silhouette"] = float(sil) if np.isfinite(sil) else None
        except ValueError as e:
            out["notes"].append(f"silhouette: {e}")
    return out


def _attribute_codes(dset: Any) -> dict[str, tuple[Any, list[str]]]:
    """The descriptor set's attribute columns as integer codes (kept in memory: 4 bytes a row), once per set."""
    from cluster_lib._dask_utils import persist_with

    out = {}
    for column in dset.index_columns:
        if column == "image":
            continue
        coded = dset.index_codes(column)
        if coded is not None:
            codes, values = coded
            out[column] = (persist_with(codes)[0], values)
    return out


def _interpretation(attributes: dict[str, tuple[Any, list[str]]], labels: Any,
                    sizes: dict[str, int]) -> dict[str, Any]:
    from cluster_lib._interpret import contingency_tables, interpret

    label_values = np.array(sorted(int(k) for k in sizes), dtype=np.int64)
    tables = contingency_tables(labels, {c: (codes, len(v)) for c, (codes, v) in attributes.items()}, label_values)
    return interpret({c: (tables[c], attributes[c][1]) for c in attributes}, label_values)


def run_job(spec: JobSpec | str | os.PathLike[str], *, client: Any = None, scheduler: str | None = None,
            out: str | os.PathLike[str] | None = None, echo: Callable[[str], None] = print,
            performance_report: bool = False) -> RunResult:
    """Run a job spec to a complete run directory.

    Parameters
    ----------
    spec : JobSpec or path
        The job (a path is loaded and validated with :func:`jobs.spec.load_spec`).
    client : distributed.Client, optional
        Use this client (a notebook's, say) instead of connecting.
    scheduler : str, optional
        Scheduler address (else ``DASK_SCHEDULER_ADDRESS``, else an embedded LocalCluster).
    out : path, optional
        Run directory to write (default ``RUNS/<UTC start time>``, and ``RUNS/latest`` moves to it).
    echo : callable
        Receives one line of progress at a time.
    performance_report : bool
        Save Dask's performance report of the run as ``RUN_DIR/performance.html``.

    Returns
    -------
    RunResult
    """
    from cluster_lib import Preprocessor
    from cluster_lib._dask_utils import maybe_persist

    t0 = time.perf_counter()
    started = datetime.now(timezone.utc)
    if not isinstance(spec, JobSpec):
        spec = load_spec(spec)
    store = DescriptorStore(spec.store)
    names = store.names()
    for i, d in enumerate(spec.descriptors):
        if d not in names:
            raise SpecError(spec.source, f"key 'descriptors[{i}]': {d!r} is not in the store {spec.store} "
                            f"(it holds: {', '.join(names) or 'nothing'})")
    final = Path(out).absolute() if out else spec.runs / new_run_name(started)
    writer = RunWriter(final, runs=None if out else spec.runs)
    timings: dict[str, float] = {}
    results: list[dict[str, Any]] = []
    n_results = len(spec.descriptors) * len(spec.methods)
    report_data: dict[str, Any] = {}
    inputs = []
    try:
        with connect(spec, scheduler, client, echo) as c, _maybe_performance_report(
            writer.path / "performance.html" if performance_report else None
        ):
            timings["connect"] = time.perf_counter() - t0
            for d in spec.descriptors:
                dset = store[d]
                inputs.append({"descriptor": d, "store": spec.store, "n_rows": dset.n_rows, "n_dims": dset.n_dims,
                               "batches": [b.to_json() for b in dset.batches]})
                t = time.perf_counter()
                X = dset.vectors()
                pre = Preprocessor(pca=spec.pca, normalize=spec.normalize, random_state=spec.random_state)
                Z, _ = maybe_persist(pre.fit_transform(X), "auto")
                attributes = _attribute_codes(dset)
                timings[f"{d}/preprocess"] = time.perf_counter() - t
                echo(f"[{d}] {dset.n_rows} rows x {dset.n_dims} dims -> {Z.shape[1]} dims "
                     f"({timings[f'{d}/preprocess']:.1f} s)")
                for m in spec.methods:
                    rid = f"{d}__{m.id}"
                    t = time.perf_counter()
                    labels, fit_s = _fit_one(m.estimator(spec.random_state), Z)
                    scores = _score(Z, labels, m.method, spec)
                    interp = _interpretation(attributes, labels, scores["sizes"])
                    files = writer.write_labels(rid, labels)
                    report_data[rid] = _report_data(Z, labels, spec)
                    seconds = time.perf_counter() - t
                    timings[rid] = seconds
                    row = {
                        "id": rid, "descriptor": d, "method": m.method, "params": m.params,
                        "n_rows": dset.n_rows, "n_dims": int(Z.shape[1]), **scores,
                        "interpretation": interp["interpretation"], "attributes": interp["attributes"],
                        "clusters": interp["clusters"], "fit_seconds": fit_s, "seconds": seconds,
                        "labels": files,
                    }
                    results.append(row)
                    ch = "-" if row["calinski_harabasz"] is None else f"{row['calinski_harabasz']:.1f}"
                    db = "-" if row["davies_bouldin"] is None else f"{row['davies_bouldin']:.3f}"
                    echo(f"[{len(results)}/{n_results}] {rid}: {row['n_clusters']} clusters, CH {ch}, DB {db}, "
                         f"{row['interpretation']} ({seconds:.1f} s)")
            versions = _versions()
            writer.write_json("metrics.json", {"results": results})
            writer.write_json("report/data.json", {"store": spec.store, "results": report_data})
            t = time.perf_counter()
            report = render_report(writer.path, store, write=writer.write_bytes, image_root=spec.image_root,
                                   run_name=final.name)
            timings["report"] = time.perf_counter() - t
            writer.write_bytes("report/summary.md", summary_table(results).encode())
            echo(f"report: {report['images_shown']} crops shown, placeholders {report['placeholders'] or 'none'}")
            writer.write_json("manifest.json", {
                "status": "complete", "started": started.isoformat(timespec="seconds"),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "spec": spec.raw, "spec_file": spec.source, "store": spec.store, "inputs": inputs,
                "versions": versions, "timings": timings, "scheduler": c.scheduler.address,
                "report": report,
            })
        path = writer.commit()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - t0
    echo(f"run complete: {path} ({seconds:.1f} s)")
    return RunResult(path, results, seconds)


def _report_data(Z: Any, labels: Any, spec: JobSpec) -> dict[str, Any]:
    """What the report needs of one result: sampled rows per cluster and a projection sample."""
    from cluster_lib import PCA
    from cluster_lib._dask_utils import sample_rows
    from cluster_lib._sampling import sample_per_cluster

    samples = sample_per_cluster(labels, spec.crops_per_cluster, spec.random_state) if spec.crops_per_cluster else {}
    out: dict[str, Any] = {"samples": {str(k): v.tolist() for k, v in samples.items()}, "projection": None}
    if spec.projection_sample:
        rng = np.random.default_rng(spec.random_state)
        rows, sample = sample_rows(Z, spec.projection_sample, rng)
        lab = np.asarray(labels[rows].compute()) if hasattr(labels, "compute") else np.asarray(labels)[rows]
        k = min(3, sample.shape[1], sample.shape[0])
        xyz = PCA(k).fit_transform(sample.astype(np.float64)) if sample.shape[0] >= 2 else np.zeros((len(rows), 2))
        out["projection"] = {"rows": rows.tolist(), "xyz": np.round(xyz, 4).tolist(), "labels": lab.tolist()}
    return out


def summary_table(results: list[dict[str, Any]]) -> str:
    """The study's comparison table in Markdown."""
    lines = [
        "| Descriptor | Size | Method | calinski_harabasz_score | davies_bouldin_score | silhouette | clusters "
        "| noise | cluster interpretation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in results:
        lines.append(
            f"| {r['descriptor']} | {r['n_dims']} | {r['id'].split('__', 1)[1]} | {f(r['calinski_harabasz'], '.1f')} "
            f"| {f(r['davies_bouldin'], '.3f')} | {f(r['silhouette'], '.3f')} | {r['n_clusters']} "
            f"| {r['noise_fraction']:.1%} | {r['interpretation']} |"
        )
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ivc", "dask", "distributed", "dask-ml", "numpy", "zarr", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
