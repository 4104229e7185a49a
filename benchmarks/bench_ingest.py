"""Ingest throughput and peak memory, side by side with a plain numpy + zarr write.

In one run, on the same generated file (default 1M x 512 float32, 2 GiB):

* ``numpy.load + zarr``: ``X = numpy.load(path)`` then one zarr v3 array write with
  the store's chunking and codec (the floor: no validation, no index, no hashing);
* ``ivc ingest``: the real command, in its own process (streams the memory-mapped
  file, checks every value, hashes, writes the vectors and the 1M-row index).

Each contender runs in a fresh process whose whole-tree peak RSS is sampled; the
order alternates over the repeats.  Then a codec table: compression ratio and
write/read throughput of the candidate codecs on a slice of the same data, next
to the rate at which a k-means pass (one distance GEMM against k centers)
consumes rows, which is what the default codec must keep up with.

Run ``python benchmarks/bench_ingest.py [--rows N] [--dims D] [--repeats R]``; it
prints a table and writes ``benchmarks/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._measure import run_measured, write_results  # noqa: E402

BASELINE = textwrap.dedent(
    """
    import sys, numpy as np, zarr
    path, out, chunk_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    X = np.load(path)
    z = zarr.create_array(out, shape=X.shape, chunks=(chunk_rows, X.shape[1]), dtype="float32",
                          compressors=None, fill_value=0.0)
    z[:] = X
    """
)

IVC = textwrap.dedent(
    """
    import sys
    from jobs.cli import main
    sys.exit(main(["ingest", sys.argv[1], "--index", sys.argv[2], "--store", sys.argv[3], "--name", "bench"]))
    """
)


def codec_table(path: Path, work: Path, rows: int, k: int) -> list[dict]:
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    X = np.load(path, mmap_mode="r")[:rows]
    X = np.ascontiguousarray(X)
    d = X.shape[1]
    from storage import choose_chunk_rows

    chunk = choose_chunk_rows(d)
    # the rate a k-means pass consumes rows: one distance GEMM against k centers
    C = X[:k].copy()
    X[:chunk] @ C.T
    t = time.perf_counter()
    for i in range(0, rows, chunk):
        X[i : i + chunk] @ C.T
    gemm_rate = X.nbytes / (time.perf_counter() - t)
    out = []
    for name, comp in [
        ("none (default)", None),
        ("blosc-lz4-shuffle", BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")),
        ("blosc-lz4-bitshuffle", BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")),
        ("blosc-zstd1-shuffle", BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")),
        ("zstd1", ZstdCodec(level=1)),
    ]:
        p = work / f"codec-{name.split()[0]}"
        shutil.rmtree(p, ignore_errors=True)
        z = zarr.create_array(p, shape=X.shape, chunks=(chunk, d), dtype="float32", compressors=comp)
        t = time.perf_counter()
        z[:] = X
        tw = time.perf_counter() - t
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        t = time.perf_counter()
        z[:]
        tr = time.perf_counter() - t
        out.append({
            "codec": name, "ratio": X.nbytes / size, "write_GBps": X.nbytes / tw / 1e9,
            "read_GBps": X.nbytes / tr / 1e9, "kmeans_pass_consumes_GBps": gemm_rate / 1e9,
        })
        shutil.rmtree(p, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--codec-rows", type=int, default=262_144)
    ap.add_argument("--k", type=int, default=100, help="centers of the k-means pass in the codec table")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", default=str(HERE / "results" / "ingest.json"))
    args = ap.parse_args()

    from storage import choose_chunk_rows
    from storage.synthetic import make_large_descriptors

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ivc-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "descriptors.npy"
    index = work / "index.csv"
    t = time.perf_counter()
    make_large_descriptors(data, args.rows, args.dims, seed=0, index_path=index,
                           image_pool=[f"pool/crop{i:04d}.png" for i in range(1000)])
    gen_s = time.perf_counter() - t
    size = data.stat().st_size
    print(f"generated {args.rows} x {args.dims} float32 ({size / 2**30:.2f} GiB) in {gen_s:.1f} s at {work}")
    chunk_rows = choose_chunk_rows(args.dims)

    runs: dict[str, list[dict]] = {"numpy.load + zarr": [], "ivc ingest": []}
    for r in range(args.repeats):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for name in order:
            target = work / f"out-{r}-{name.split()[0].replace('.', '')}"
            shutil.rmtree(target, ignore_errors=True)
            if name == "ivc ingest":
                argv = [sys.executable, "-c", IVC, str(data), str(index), str(target)]
            else:
                argv = [sys.executable, "-c", BASELINE, str(data), str(target), str(chunk_rows)]
            m = run_measured(argv, cwd=HERE.parent)
            m["GBps"] = size / m["seconds"] / 1e9
            runs[name].append(m)
            print(f"  run {r} {name:18s} {m['seconds']:6.2f} s  {m['GBps']:5.2f} GB/s  peak RSS {m['peak_rss_MiB']:7.0f} MiB")
            shutil.rmtree(target, ignore_errors=True)

    best = {k: min(v, key=lambda m: m["seconds"]) for k, v in runs.items()}
    ratio = best["ivc ingest"]["seconds"] / best["numpy.load + zarr"]["seconds"]
    print()
    print("| contender | best time (s) | GB/s | peak RSS (MiB) | peak RSS / file size |")
    print("|---|---|---|---|---|")
    for k, m in best.items():
        print(f"| {k} | {m['seconds']:.2f} | {m['GBps']:.2f} | {m['peak_rss_MiB']:.0f} | {m['peak_rss_MiB'] * 2**20 / size:.2f} |")
    print(f"\nivc ingest time / (numpy.load + zarr) time = {ratio:.2f}  (bar: <= 2)")

    codecs = codec_table(data, work, min(args.codec_rows, args.rows), args.k)
    print("\n| codec | ratio | write GB/s | read GB/s | k-means pass consumes GB/s |")
    print("|---|---|---|---|---|")
    for c in codecs:
        print(f"| {c['codec']} | {c['ratio']:.2f} | {c['write_GBps']:.2f} | {c['read_GBps']:.2f} | "
              f"{c['kmeans_pass_consumes_GBps']:.2f} |")

    result = {
        "benchmark": "ingest", "rows": args.rows, "dims": args.dims, "file_bytes": size,
        "chunk_rows": chunk_rows, "runs": runs, "best": best, "time_ratio_ivc_over_baseline": ratio,
        "codecs": codecs, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    write_results(args.out, result)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
