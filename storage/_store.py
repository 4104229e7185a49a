"""The descriptor store: named descriptor sets as chunked zarr v3 arrays.

Layout of a store (a zarr v3 group)::

    STORE/zarr.json                 root group, attributes {"ivc_store": 1}
    STORE/<name>/zarr.json          descriptor set; attributes hold n_rows, n_dims,
                                    chunk_rows, index_columns and the batch list
    STORE/<name>/vectors            float32 (rows, dims), chunked by rows
    STORE/<name>/batch              int32 (rows,): position of the row's batch in the list
    STORE/<name>/index/image        str (rows,): path or URL of the crop
    STORE/<name>/index/<column>     str (rows,): attribute columns of the index file

Every array of a set shares the same row chunking, so chunk ``i`` of the
vectors lines up with chunk ``i`` of every index column.  ``n_rows`` in the
set's attributes is the commit point of an ingest: arrays may be longer while
an ingest is writing, and readers only ever see the first ``n_rows`` rows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from storage._errors import BadInputError, StoreError
from storage._journal import JOURNAL_DIR

if TYPE_CHECKING:
    import dask.array as da
    import pandas as pd

__all__ = ["DescriptorStore", "DescriptorSet", "BatchInfo", "StoreLocation", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_set_name(name: str) -> None:
    """Refuse a descriptor-set name that cannot be a folder of the store."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInputError(
            None,
            f"descriptor name {name!r} is not allowed; expected letters, digits, '_', '-' or '.', "
            "starting with a letter or digit",
        )


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives, normalised once from a path or fsspec URL.

    Attributes
    ----------
    url : str
        What zarr and dask are given to open the store.
    fs : fsspec.AbstractFileSystem
        Filesystem holding the store, for the whole-file operations of the journal.
    root : str
        The store's root path on ``fs``.
    """

    url: str
    fs: Any
    root: str

    @classmethod
    def of(cls, where: str | os.PathLike[str] | StoreLocation) -> StoreLocation:
        if isinstance(where, StoreLocation):
            return where
        import fsspec

        text = os.fspath(where)
        if "://" not in text:
            text = str(Path(text).expanduser().absolute())
        fs, root = fsspec.core.url_to_fs(text)
        return cls(url=text, fs=fs, root=root.rstrip("/") or "/")

    @property
    def is_local(self) -> bool:
        return "://" not in self.url or self.url.startswith("file://")

    def zarr_store(self, read_only: bool) -> Any:
        import zarr.storage

        if "://" not in self.url:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(self.url, read_only=read_only)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class BatchInfo:
    """One ingested batch: rows ``start`` to ``stop`` (exclusive) of its set."""

    id: str
    start: int
    stop: int
    sha256: str
    ingested_at: str
    source: str
    index: str
    #: absolute folder of the index file: relative image paths of this batch resolve against it
    image_root: str = ""

    @property
    def n_rows(self) -> int:
        return self.stop - self.start

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BatchInfo:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class DescriptorSet:
    """A named set of descriptors in a store, opened without reading its rows.

    Obtain one with ``DescriptorStore(path)[name]``.

    Attributes
    ----------
    name : str
    n_rows, n_dims, chunk_rows : int
    batches : tuple of BatchInfo
    index_columns : tuple of str
        ``image`` first, then the attribute columns.
    """

    def __init__(self, location: StoreLocation, name: str, group: Any) -> None:
        attrs = group.attrs.asdict()
        if attrs.get("ivc_descriptor_set") != FORMAT_VERSION:
            raise StoreError(f"{location.url}/{name}: not an ivc descriptor set (format {FORMAT_VERSION})")
        self.location = location
        self.name = name
        self._group = group
        self.n_rows = int(attrs["n_rows"])
        self.n_dims = int(attrs["n_dims"])
        self.chunk_rows = int(attrs["chunk_rows"])
        self.index_columns = tuple(attrs["index_columns"])
        self.batches = tuple(BatchInfo.from_json(b) for b in attrs["batches"])

    def __repr__(self) -> str:
        return (
            f"<DescriptorSet {self.name!r}: {self.n_rows} rows x {self.n_dims} dims, "
            f"{len(self.batches)} batches, chunks of {self.chunk_rows} rows>"
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_dims)

    def zarr_array(self, component: str) -> Any:
        """The zarr array ``component`` (``vectors``, ``batch``, ``index/<column>``), read-only."""
        return self._group[component]

    def _dask(self, component: str) -> da.Array:
        import dask.array as da

        arr = self.zarr_array(component)
        chunks = arr.chunks
        x = da.from_zarr(arr, chunks=chunks, name=f"ivc-{self.name}-{component}-{self._token()}")
        if x.shape[0] != self.n_rows:
            x = x[: self.n_rows]
        return x

    def _token(self) -> str:
        # Changes with every committed batch, so dask never confuses two versions of a set.
        last = self.batches[-1].sha256[:16] if self.batches else "empty"
        return f"{self.n_rows}-{last}"

    def vectors(self) -> da.Array:
        """The descriptors as a dask array of shape (n_rows, n_dims), float32.

        Nothing is read until the array is computed; each dask chunk is one zarr chunk.
        """
        return self._dask("vectors")

    def index_column(self, column: str) -> da.Array:
        """One index column (``image`` or an attribute) as a dask array of strings."""
        if column not in self.index_columns:
            raise KeyError(f"no index column {column!r} in {self.name!r}; expected one of {list(self.index_columns)}")
        return self._dask(f"index/{column}")

    def index_codes(self, column: str, max_values: int = 1000) -> tuple[da.Array, list[str]] | None:
        """An attribute column as integer codes into its sorted distinct values.

        One pass over the column finds the values; the codes are a lazy dask array
        chunked like the vectors. Returns None when the column has more than
        ``max_values`` distinct values (an identifier or timestamp, not a category).
        """
        import dask

        col = self.index_column(column)
        parts = dask.compute(*[dask.delayed(_distinct)(b) for b in col.to_delayed().ravel()])
        values = sorted(set().union(*parts)) if parts else []
        if len(values) > max_values:
            return None
        vocab = np.array(values, dtype=str) if values else np.array([], dtype="<U1")
        codes = col.map_blocks(_encode, vocab, dtype=np.int32)
        return codes, values

    def batch_codes(self) -> da.Array:
        """Per row, the position of its batch in :attr:`batches` (int32 dask array)."""
        return self._dask("batch")

    def read_index(self, rows: Any = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Read index rows into a DataFrame (``row``, ``batch_id`` and the columns).

        Parameters
        ----------
        rows : slice, array of int or None
            Rows to read (all if None; mind the memory for millions of rows).
        columns : list of str, optional
            Index columns to read; all by default.
        """
        import pandas as pd

        cols = list(self.index_columns) if columns is None else list(columns)
        for c in cols:
            if c not in self.index_columns:
                raise KeyError(f"no index column {c!r} in {self.name!r}; expected one of {list(self.index_columns)}")
        sel = _row_selection(rows, self.n_rows)
        data: dict[str, Any] = {"row": sel}
        codes = _read_rows(self.zarr_array("batch"), sel)
        ids = np.array([b.id for b in self.batches] or [""], dtype=object)
        data["batch_id"] = ids[codes]
        for c in cols:
            data[c] = _read_rows(self.zarr_array(f"index/{c}"), sel).astype(object)
        return pd.DataFrame(data)

    def read_vectors(self, rows: Any) -> np.ndarray:
        """Read selected rows of the vectors into memory (a sample, not the whole set)."""
        return _read_rows(self.zarr_array("vectors"), _row_selection(rows, self.n_rows))


def _distinct(block: np.ndarray) -> set[str]:
    return set(np.unique(np.asarray(block, dtype=object)).tolist())


def _encode(block: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    # zarr hands back numpy's variable-width StringDType; compare as Python strings
    return np.searchsorted(vocab, np.asarray(block, dtype=object).astype(vocab.dtype)).astype(np.int32)


def _row_selection(rows: Any, n_rows: int) -> np.ndarray:
    if rows is None:
        return np.arange(n_rows)
    if isinstance(rows, slice):
        return np.arange(n_rows)[rows]
    sel = np.asarray(rows, dtype=np.int64)
    if sel.size and (sel.min() < 0 or sel.max() >= n_rows):
        raise IndexError(f"row selection outside 0..{n_rows - 1}")
    return sel


def _read_rows(arr: Any, sel: np.ndarray) -> np.ndarray:
    if sel.size == 0:
        return arr[0:0]
    if np.all(np.diff(sel) == 1):
        return arr[int(sel[0]) : int(sel[-1]) + 1]
    order = np.argsort(sel, kind="stable")
    out = arr.get_orthogonal_selection((sel[order],) + (slice(None),) * (arr.ndim - 1))
    result = np.empty_like(out)
    result[order] = out
    return result


class DescriptorStore:
    """A store of named descriptor sets, at a local path or fsspec URL.

    Parameters
    ----------
    where : str, os.PathLike or StoreLocation
        The store's folder (created by the first ingest).

    Examples
    --------
    >>> store = DescriptorStore("store")                       # doctest: +SKIP
    >>> store.ingest("color.npy", index="index.csv", name="color")  # doctest: +SKIP
    >>> X = store["color"].vectors()   # dask array, nothing read yet   # doctest: +SKIP
    """

    def __init__(self, where: str | os.PathLike[str] | StoreLocation) -> None:
        self.location = StoreLocation.of(where)

    def __repr__(self) -> str:
        return f"DescriptorStore({self.location.url!r})"

    def exists(self) -> bool:
        return self.location.fs.exists(f"{self.location.root}/zarr.json")

    def _root(self, mode: str = "r") -> Any:
        import zarr

        return zarr.open_group(store=self.location.zarr_store(read_only=(mode == "r")), mode=mode)

    def names(self) -> list[str]:
        """Names of the descriptor sets in the store, sorted."""
        if not self.exists():
            return []
        out = []
        fs, root = self.location.fs, self.location.root
        for path in fs.ls(root, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith(".") or not fs.exists(f"{root}/{name}/zarr.json"):
                continue
            try:
                check_set_name(name)
            except BadInputError:
                continue
            out.append(name)
        return sorted(out)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __getitem__(self, name: str) -> DescriptorSet:
        check_set_name(name)
        if not self.exists() or name not in self.names():
            raise KeyError(
                f"{self.location.url}: no descriptor set {name!r}; the store holds {self.names() or 'none'}"
            )
        return DescriptorSet(self.location, name, self._root("r")[name])

    def recover(self) -> list[str]:
        """Undo what interrupted ingests left behind (done anyway by the next ingest).

        Returns
        -------
        list of str
            Names of the sets whose journal was found.
        """
        from storage._ingest import recover_set

        fs, root = self.location.fs, self.location.root
        jroot = f"{root}/{JOURNAL_DIR}"
        if not fs.exists(jroot):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(jroot, detail=False)]
        for name in names:
            recover_set(self, name)
        return names

    def ingest(self, file: str | os.PathLike[str], *, index: str | os.PathLike[str], name: str,
               batch_id: str | None = None, **kwargs: Any) -> Any:
        """Append one batch; see :func:`storage.ingest`."""
        from storage._ingest import ingest

        return ingest(file, index=index, store=self.location, name=name, batch_id=batch_id, **kwargs)
