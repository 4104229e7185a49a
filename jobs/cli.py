"""The ``ivc`` command line.

Exit status: 0 done, 2 bad input or spec (one line on stderr naming the file,
row or key and what was expected), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from storage import BadInputError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivc", description="Cluster image descriptors at scale on Dask."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "ingest", help="append a descriptor file and its crop index to a descriptor store",
        description="Append FILE (.npy, .npz, .csv, .parquet; rows x dims) and its crop index "
        "(CSV with an 'image' column) to the descriptor set NAME of STORE, atomically. "
        "A batch id (or content) already in the set changes nothing.",
    )
    p.add_argument("file", metavar="FILE", help="descriptor file")
    p.add_argument("--index", required=True, metavar="INDEX", help="crop index CSV, one line per row of FILE")
    p.add_argument("--store", required=True, metavar="STORE", help="store folder or fsspec URL (created if missing)")
    p.add_argument("--name", required=True, metavar="DESCRIPTOR", help="descriptor set to append to")
    p.add_argument("--batch-id", metavar="ID", help="names the batch (default: from its content hash)")
    p.add_argument("--key", metavar="KEY", help="array to read from a .npz holding several")
    p.add_argument("--chunk-mib", type=float, default=None, metavar="MIB",
                   help="chunk size of a new set's vectors in MiB (default 32)")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser(
        "run", help="run a job spec on Dask: fit, score and interpret every descriptor x method",
        description="Run JOB.yaml: connect to --scheduler (or DASK_SCHEDULER_ADDRESS), else start an embedded "
        "LocalCluster on 127.0.0.1; write the run directory (default RUNS/<UTC start time>, moving RUNS/latest).",
    )
    p.add_argument("spec", metavar="JOB.yaml", help="job spec")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (tcp:// or tls://)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to write (must not exist)")
    p.add_argument("--performance-report", action="store_true",
                   help="save Dask's performance report as RUN_DIR/performance.html")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="re-render a run's report from its directory and the store",
                       description="Re-render RUN_DIR/report/index.html and its images.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a complete run directory")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "demo", help="synthetic vehicle crops -> descriptors -> store -> study -> report",
        description="Generate synthetic vehicle crops with known colors and types, compute their "
        "descriptors (color, type, reid, generic), ingest them into DIR/store, write DIR/job.yaml (every "
        "descriptor x every method) and run it on an embedded LocalCluster: the table and the report's path "
        "are printed, and `ivc run DIR/job.yaml` repeats it.",
    )
    p.add_argument("--out", default="ivc-demo", metavar="DIR", help="output folder (default ./ivc-demo)")
    p.add_argument("--rows", type=int, default=None, metavar="N", help="number of crops (default 6000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")
    p.add_argument("--no-run", action="store_true", help="stop after ingest (no clustering run)")
    p.set_defaults(func=_cmd_demo)
    return parser


def _cmd_ingest(args: argparse.Namespace) -> int:
    from storage import DEFAULT_CHUNK_MIB, ingest

    result = ingest(
        args.file, index=args.index, store=args.store, name=args.name, batch_id=args.batch_id,
        key=args.key, chunk_mib=args.chunk_mib or DEFAULT_CHUNK_MIB,
    )
    print(result.message())
    return EXIT_OK


def _progress_echo() -> Callable[[str], None]:
    """Plain lines when stdout is not a terminal; on a terminal, results counted as ``[i/N]`` get a bar."""
    if not sys.stdout.isatty():
        return print

    def echo(line: str) -> None:
        m = re.match(r"\[(\d+)/(\d+)\] (.*)", line)
        if not m:
            print(line)
            return
        i, n = int(m.group(1)), int(m.group(2))
        done = 24 * i // max(n, 1)
        print(f"[{'#' * done}{'.' * (24 - done)}] {i}/{n} {m.group(3)}")

    return echo


def _cmd_run(args: argparse.Namespace) -> int:
    from jobs.run import run_job

    if args.out and Path(args.out).exists():
        raise BadInputError(args.out, "already exists; expected a new run directory path for --out")
    res = run_job(args.spec, scheduler=args.scheduler, out=args.out, echo=_progress_echo(),
                  performance_report=args.performance_report)
    print((res.path / "report" / "summary.md").read_text(), end="")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    import json

    from jobs.report import render_report

    run = Path(args.run_dir)
    manifest = run / "manifest.json"
    if not manifest.is_file() or not (run / "report" / "data.json").is_file():
        raise BadInputError(run, "is not a run directory; expected manifest.json and report/data.json in it")
    if json.loads(manifest.read_text()).get("status") != "complete":
        raise BadInputError(manifest, "status is not 'complete'; expected a finished run")
    stats = render_report(run)
    print(f"{run / 'report' / 'index.html'}: {stats['images_shown']} crops shown, "
          f"placeholders {stats['placeholders'] or 'none'}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from jobs.demo import run_demo

    res = run_demo(Path(args.out), rows=args.rows, seed=args.seed, run=not args.no_run, echo=_progress_echo())
    if res.run is not None:
        print((res.run / "report" / "summary.md").read_text(), end="")
        print(f"report: {res.run / 'report' / 'index.html'}")
        print(f"rerun with: ivc run {res.root / 'job.yaml'}")
    return EXIT_OK


def _quiet_distributed(level: int) -> None:
    """distributed logs every scheduler and worker event at INFO; keep that for -vv."""
    import distributed  # noqa: F401 - configures its loggers on import, which we then adjust

    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    if args.command in ("run", "demo", "nightly"):
        _quiet_distributed(logging.DEBUG if args.verbose >= 2 else level)
    try:
        return args.func(args)
    except BadInputError as e:
        print(f"ivc {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"ivc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
