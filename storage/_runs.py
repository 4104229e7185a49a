"""Run directories: one folder per job run, written under a temporary name and renamed into place.

Layout (../shared/DESIGN.md)::

    RUN_DIR/manifest.json     spec, inputs, versions, timings, status
    RUN_DIR/metrics.json      {"results": [...]}
    RUN_DIR/labels/<id>.csv   row,label
    RUN_DIR/labels.zarr       <id>: int32 labels, chunked like the descriptors
    RUN_DIR/report/...        the report and its images

A run is built in ``RUNS/.<name>.partial-<pid>`` and becomes visible with one
rename once complete; ``RUNS/latest`` (a symlink) is then replaced atomically.
A crash leaves only the hidden partial folder, which readers never look at.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunWriter", "latest_run", "new_run_name", "read_run"]


def new_run_name(now: datetime | None = None) -> str:
    """Folder name of a run started at ``now`` (UTC), e.g. ``20261204T153012Z``."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    # NaN and inf are not JSON: they become null
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


class RunWriter:
    """Writes one run directory; nothing is visible at its final path until :meth:`commit`.

    Parameters
    ----------
    final : Path
        Where the complete run will be (must not exist).
    runs : Path, optional
        The runs folder whose ``latest`` link to move to this run on commit.
    """

    def __init__(self, final: Path, *, runs: Path | None = None) -> None:
        self.final = Path(final).absolute()
        if self.final.exists():
            raise FileExistsError(f"{self.final}: a run directory is already there")
        self.runs = runs
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.final.parent / f".{self.final.name}.partial-{os.getpid()}"
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()
        (self.path / "labels").mkdir()
        (self.path / "report").mkdir()

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(_clean(obj), indent=2, default=_json_default, allow_nan=False))
        os.replace(tmp, p)
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write a file of the run (a report image, say), relative to the run directory."""
        p = self.path / name
        if self.path.resolve() not in p.resolve().parents:
            raise ValueError(f"{name!r} is outside the run directory")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def write_labels(self, result_id: str, labels: Any) -> dict[str, str]:
        """Store a result's labels (a dask or numpy int array in store row order) as CSV and zarr.

        Streams chunk by chunk: the zarr array is written by dask, the CSV one chunk of rows
        at a time, so no more than one chunk of labels is in this process at once.
        """
        import dask.array as da
        import zarr

        if not isinstance(labels, da.Array):
            labels = da.from_array(np.asarray(labels), chunks=1 << 20)
        labels = labels.astype(np.int32)
        group = zarr.open_group(str(self.path / "labels.zarr"), mode="a")
        arr = group.create_array(result_id, shape=labels.shape, chunks=(labels.chunks[0][0] or 1,),
                                 dtype="int32", fill_value=-1, overwrite=True)
        if labels.chunks[0] and len(set(labels.chunks[0][:-1])) > 1:
            labels = labels.rechunk(arr.chunks)
        elif labels.chunks[0] and labels.chunks[0][0] != arr.chunks[0]:
            labels = labels.rechunk(arr.chunks)
        da.store(labels, arr, lock=False)
        csv = self.path / "labels" / f"{result_id}.csv"
        with open(csv, "w", newline="") as f:
            f.write("row,label\n")
            start = 0
            step = arr.chunks[0]
            for s in range(0, arr.shape[0], step):
                block = arr[s : s + step]
                rows = np.arange(start, start + block.shape[0])
                np.savetxt(f, np.column_stack([rows, block]), fmt="%d", delimiter=",")
                start += block.shape[0]
        return {"csv": str(csv.relative_to(self.path)), "zarr": f"labels.zarr/{result_id}"}

    def commit(self) -> Path:
        """Rename the run into place and point ``latest`` at it; returns the final path."""
        os.replace(self.path, self.final)
        if self.runs is not None:
            link = Path(self.runs) / "latest"
            tmp = Path(self.runs) / f".latest.tmp-{os.getpid()}"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(os.path.relpath(self.final, Path(self.runs)), tmp)
            os.replace(tmp, link)
        return self.final

    def abort(self) -> None:
        """Drop the partial run."""
        shutil.rmtree(self.path, ignore_errors=True)


def latest_run(runs: Path) -> Path | None:
    """The run ``RUNS/latest`` names, or None."""
    link = Path(runs) / "latest"
    if not link.exists():
        return None
    return link.resolve()


def read_run(run_dir: Path) -> dict[str, Any]:
    """The manifest and metrics of a complete run."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    if manifest.get("status") != "complete":
        raise ValueError(f"{run_dir}: run status is {manifest.get('status')!r}, not 'complete'")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"manifest": manifest, "metrics": metrics, "path": run_dir}
