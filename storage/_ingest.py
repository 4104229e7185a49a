"""Append a batch of descriptors and its crop index to a descriptor set, atomically.

One pass over the input: each row block is converted to float32, checked for
NaN and inf, hashed, and written straight into the set's chunks, so a large
``.npy`` is read once through its memory map and never held whole.  The
change is guarded by an undo journal (:mod:`storage._journal`); the set's
attributes, written last, are the commit point.  Any failure, a bad row found
late included, rolls the store back to the bytes it had before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from storage._errors import BadInputError, StoreError
from storage._index import IndexReader
from storage._journal import Journal, recover
from storage._sources import DescriptorSource, open_descriptor_source
from storage._store import FORMAT_VERSION, BatchInfo, DescriptorSet, DescriptorStore, StoreLocation, check_set_name

__all__ = ["ingest", "IngestResult", "DEFAULT_CHUNK_MIB", "choose_chunk_rows", "recover_set"]

logger = logging.getLogger(__name__)

#: Default size of one chunk of vectors; see benchmarks/bench_ingest.py.
DEFAULT_CHUNK_MIB = 32.0


def choose_chunk_rows(n_dims: int, chunk_mib: float = DEFAULT_CHUNK_MIB) -> int:
    """Rows per chunk so that one chunk of float32 vectors is near ``chunk_mib`` MiB.

    Rounded down to a multiple of 1024 rows where that is at least 1024.
    """
    if chunk_mib <= 0:
        raise ValueError(f"chunk_mib={chunk_mib} should be > 0.")
    rows = max(1, int(chunk_mib * 2**20 // (4 * n_dims)))
    return rows - rows % 1024 if rows >= 1024 else rows


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did.

    Attributes
    ----------
    status : {"ingested", "already-ingested", "duplicate-content"}
        ``ingested`` appended rows; the other two changed nothing.
    batch : BatchInfo
        The batch appended, or the stored batch that made this one a no-op.
    """

    status: str
    name: str
    batch: BatchInfo
    n_rows: int
    n_dims: int
    seconds: float

    @property
    def changed(self) -> bool:
        return self.status == "ingested"

    def message(self) -> str:
        b = self.batch
        if self.status == "ingested":
            return (
                f"ingested batch {b.id!r} into {self.name!r}: rows {b.start}..{b.stop - 1} "
                f"({b.n_rows} rows x {self.n_dims} dims, {self.seconds:.1f} s); the set now holds {self.n_rows} rows"
            )
        why = "batch id" if self.status == "already-ingested" else "content (sha256)"
        return (
            f"batch {b.id!r} already in {self.name!r} (same {why}, rows {b.start}..{b.stop - 1}); nothing changed"
        )


def ingest(
    file: str | os.PathLike[str],
    *,
    index: str | os.PathLike[str],
    store: str | os.PathLike[str] | StoreLocation,
    name: str,
    batch_id: str | None = None,
    key: str | None = None,
    chunk_mib: float = DEFAULT_CHUNK_MIB,
    chunk_rows: int | None = None,
) -> IngestResult:
    """Append a descriptor file and its crop index to the set ``name`` of ``store``.

    Parameters
    ----------
    file : str or os.PathLike
        Descriptors of shape (rows, dims): ``.npy`` (memory-mapped), ``.npz``
        (one array, or the one named by ``key``), ``.csv`` (numeric columns) or
        ``.parquet`` (numeric columns or one list column; needs pyarrow).
    index : str or os.PathLike
        CSV with a header line and an ``image`` column, one line per row of ``file``.
    store : str, os.PathLike or StoreLocation
        The store folder or fsspec URL; created if missing.
    name : str
        Descriptor set to append to; created by its first batch.
    batch_id : str, optional
        Names the batch. A batch id already in the set makes this a no-op, as
        does content (sha256 of vectors and index) equal to a stored batch's.
        Defaults to ``sha256-<first 12 hex digits of the content hash>``.
    chunk_mib, chunk_rows : float, int, optional
        Row chunking of a new set: ``chunk_rows`` if given, else rows for about
        ``chunk_mib`` MiB of vectors (default 32), or, for a smaller first batch,
        its row count rounded up to a power of two (at least 1024), since zarr
        stores every chunk at full size. An existing set keeps its own chunking.

    Returns
    -------
    IngestResult

    Raises
    ------
    BadInputError
        Bad input (the message names the file and row or key); the store is unchanged.
    """
    t0 = time.perf_counter()
    check_set_name(name)
    if batch_id is not None and (not batch_id or batch_id != batch_id.strip() or "\n" in batch_id):
        raise BadInputError(None, f"batch id {batch_id!r} is empty or padded; expected a plain name")
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} should be >= 1.")
    st = DescriptorStore(store)
    if st.exists():
        recover_set(st, name)

    existing = st[name] if st.exists() and name in st.names() else None
    if existing is not None and batch_id is not None:
        for b in existing.batches:
            if b.id == batch_id:
                return IngestResult("already-ingested", name, b, existing.n_rows, existing.n_dims,
                                    time.perf_counter() - t0)

    with open_descriptor_source(file, key=key) as src, IndexReader(index) as idx:
        if existing is not None and src.n_dims != existing.n_dims:
            raise BadInputError(
                file, f"rows have {src.n_dims} dims; the set {name!r} in the store holds {existing.n_dims}-dim rows"
            )
        if existing is not None:
            rows_per_chunk = existing.chunk_rows
        elif chunk_rows is not None:
            rows_per_chunk = chunk_rows
        else:
            rows_per_chunk = choose_chunk_rows(src.n_dims, chunk_mib)
            if src.n_rows is not None and src.n_rows < rows_per_chunk:
                # zarr stores every chunk at full size: a small first batch gets chunks of
                # its own size (rounded up to a power of two) instead of a mostly empty 32 MiB.
                rows_per_chunk = max(1024, 1 << (src.n_rows - 1).bit_length())
                rows_per_chunk = min(rows_per_chunk, choose_chunk_rows(src.n_dims, chunk_mib))
        return _ingest_transaction(st, name, existing, src, idx, batch_id, rows_per_chunk, t0)


def recover_set(st: DescriptorStore, name: str) -> bool:
    """Finish or undo an interrupted ingest into ``name``; True if one was found."""
    return recover(st.location.fs, st.location.root, name,
                   committed=lambda token: _committed_past(st, name, int(token)))


def _committed_past(st: DescriptorStore, name: str, start: int) -> bool:
    # An ingest that began at row ``start`` committed iff the set now holds more rows.
    try:
        return st[name].n_rows > start
    except (KeyError, StoreError, LookupError, ValueError):  # the set never committed a batch
        return False


def _ingest_transaction(
    st: DescriptorStore,
    name: str,
    existing: DescriptorSet | None,
    src: DescriptorSource,
    idx: IndexReader,
    batch_id: str | None,
    chunk_rows: int,
    t0: float,
) -> IngestResult:
    import zarr

    loc = st.location
    fs = loc.fs
    root_dir_existed = fs.exists(loc.root)
    store_existed = st.exists()
    start = existing.n_rows if existing is not None else 0
    old_cols = list(existing.index_columns) if existing is not None else []
    new_cols = [c for c in idx.columns if c not in old_cols]
    token = str(start)

    journal = Journal(fs, loc.root, name)
    tail = start // chunk_rows if start % chunk_rows else None
    protect = ["zarr.json", "vectors/zarr.json", "batch/zarr.json", "index/zarr.json"]
    for c in old_cols:
        protect.append(f"index/{c}/zarr.json")
    if tail is not None:
        protect += [f"vectors/c/{tail}/0", f"batch/c/{tail}"] + [f"index/{c}/c/{tail}" for c in old_cols]
    if not store_existed:
        zarr.open_group(store=loc.zarr_store(read_only=False), mode="a").attrs.update({"ivc_store": FORMAT_VERSION})
    journal.begin(token, protect)

    hasher = hashlib.sha256()
    col_hash = {c: hashlib.sha256() for c in idx.columns}
    pool = ThreadPoolExecutor(1, thread_name_prefix="ivc-hash")
    pending: Future[None] | None = None
    try:
        root = zarr.open_group(store=loc.zarr_store(read_only=False), mode="a")
        if existing is None:
            group = _create_set(root, name, src.n_dims, chunk_rows)
        else:
            group = root[name]
        for c in new_cols:
            _create_column(group, c, chunk_rows, start)
        all_cols = old_cols + new_cols
        arrays = {c: group[f"index/{c}"] for c in all_cols}
        vectors = group["vectors"]
        batch_arr = group["batch"]
        code = len(existing.batches) if existing is not None else 0

        resizable = [vectors, batch_arr, *arrays.values()]
        if src.n_rows is not None:
            _resize(resizable, start + src.n_rows)
        pos = start
        first = chunk_rows - start % chunk_rows
        want = first
        while True:
            block = src.read(want)
            n = block.shape[0]
            if n == 0:
                break
            _check_finite(src, block, pos - start)
            labels = idx.read(n)
            got = len(labels["image"])
            if got != n:
                _raise_count_mismatch(src, idx, pos - start + n)
            if pending is not None:
                pending.result()
            pending = pool.submit(_hash_block, hasher, col_hash, block, labels)
            if src.n_rows is None:
                _resize(resizable, pos + n)
            vectors[pos : pos + n] = block
            batch_arr[pos : pos + n] = np.full(n, code, dtype=np.int32)
            for c in all_cols:
                values = labels.get(c)
                if values is None:
                    values = np.full(n, "", dtype=object)
                arrays[c][pos : pos + n] = values.astype(str)
            pos += n
            want = chunk_rows
        if pending is not None:
            pending.result()
        total = pos - start
        if len(idx.read(1)["image"]):
            _raise_count_mismatch(src, idx, total)
        if total == 0:
            raise BadInputError(src.path, "has no rows; expected at least one row")

        digest = _combine(hasher, col_hash, src.n_dims)
        for b in existing.batches if existing is not None else ():
            if b.sha256 == digest:
                journal.rollback()
                _drop_new_store(fs, loc, store_existed, root_dir_existed)
                return IngestResult("duplicate-content", name, b, existing.n_rows, existing.n_dims,
                                    time.perf_counter() - t0)
        bid = batch_id or f"sha256-{digest[:12]}"
        info = BatchInfo(
            id=bid,
            start=start,
            stop=pos,
            sha256=digest,
            ingested_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source=os.path.basename(src.path),
            index=os.path.basename(idx.path),
            image_root=os.path.dirname(os.path.abspath(idx.path)),
        )
        batches = [b.to_json() for b in existing.batches] if existing is not None else []
        batches.append(info.to_json())
        # The commit point: one write of the set's attributes.
        group.attrs.update(
            {"n_rows": pos, "batches": batches, "index_columns": all_cols}
        )
    except BaseException:
        if pending is not None:
            pending.cancel()
        pool.shutdown(wait=True)
        journal.rollback()
        _drop_new_store(fs, loc, store_existed, root_dir_existed)
        raise
    pool.shutdown(wait=True)
    journal.commit()
    logger.info("ingested %s rows into %s/%s in %.2f s", total, loc.url, name, time.perf_counter() - t0)
    return IngestResult("ingested", name, info, pos, src.n_dims, time.perf_counter() - t0)


def _drop_new_store(fs: Any, loc: StoreLocation, store_existed: bool, root_dir_existed: bool) -> None:
    if store_existed:
        return
    if root_dir_existed:  # the folder was there (empty): take back only the store's root metadata
        if fs.exists(f"{loc.root}/zarr.json"):
            fs.rm_file(f"{loc.root}/zarr.json")
    elif fs.exists(loc.root):
        fs.rm(loc.root, recursive=True)


def _create_set(root: Any, name: str, n_dims: int, chunk_rows: int) -> Any:
    group = root.create_group(
        name,
        attributes={
            "ivc_descriptor_set": FORMAT_VERSION,
            "n_rows": 0,
            "n_dims": n_dims,
            "chunk_rows": chunk_rows,
            "index_columns": [],
            "batches": [],
        },
    )
    # Uncompressed by default: descriptors barely compress (1.05-1.15x measured with
    # blosc/zstd) and every k-means pass reads them again, at 4-5x the decode speed.
    group.create_array(
        "vectors", shape=(0, n_dims), chunks=(chunk_rows, n_dims), dtype="float32",
        compressors=None, fill_value=0.0,
    )
    group.create_array("batch", shape=(0,), chunks=(chunk_rows,), dtype="int32", fill_value=-1)
    group.create_group("index")
    return group


def _create_column(group: Any, column: str, chunk_rows: int, n_rows: int) -> None:
    # Rows ingested before the column existed read as empty strings (the fill value).
    group["index"].create_array(column, shape=(n_rows,), chunks=(chunk_rows,), dtype=str, fill_value="")


def _resize(arrays: list[Any], n_rows: int) -> None:
    # zarr's Array.resize updates the object it is called on; writes go through the
    # same objects, which would otherwise clip them to their old shape.
    for a in arrays:
        a.resize((n_rows, *a.shape[1:]))
        if a.shape[0] != n_rows:
            raise StoreError(f"resize of {a.path} to {n_rows} rows did not take effect")


def _check_finite(src: DescriptorSource, block: np.ndarray, offset: int) -> None:
    # A NaN or inf anywhere makes the sum non-finite, so one fast reduction clears
    # almost every block; only a suspect block is searched row by row.
    if np.isfinite(block.sum(dtype=np.float64)):
        return
    ok = np.isfinite(block)
    if ok.all():
        return
    bad_rows = np.flatnonzero(~ok.all(axis=1))
    i = int(bad_rows[0])
    j = int(np.flatnonzero(~ok[i])[0])
    raise BadInputError(
        src.path,
        f"{src.describe_row(offset + i)}, dim {j}: {block[i, j]} is not finite as float32; expected finite values within float32 range "
        f"({bad_rows.size} bad rows in this block)",
    )


def _raise_count_mismatch(src: DescriptorSource, idx: IndexReader, seen: int) -> None:
    n_idx = idx.count_rest()
    n_src = src.n_rows
    if n_src is None:
        n_src = seen
        while src.read(1 << 16).shape[0]:
            pass
        n_src = src.position
    raise BadInputError(
        idx.path, f"has {n_idx} rows; expected one per descriptor row, and {os.path.basename(src.path)} has {n_src}"
    )


def _hash_block(hasher: Any, col_hash: dict[str, Any], block: np.ndarray, labels: dict[str, np.ndarray]) -> None:
    hasher.update(memoryview(block).cast("B"))
    for c, h in col_hash.items():
        # Each value ends with a separator, so the digest does not depend on block sizes.
        h.update(("\x1e".join(labels[c]) + "\x1e").encode("utf-8", "surrogatepass"))


def _combine(hasher: Any, col_hash: dict[str, Any], n_dims: int) -> str:
    total = hashlib.sha256()
    total.update(f"ivc-batch-v1 float32 dims={n_dims}\n".encode())
    total.update(hasher.digest())
    for c in sorted(col_hash):
        total.update(c.encode() + b"\x1f" + col_hash[c].digest())
    return total.hexdigest()
