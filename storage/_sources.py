"""Readers that stream descriptor files row block by row block.

Every reader validates what it can before the first row is read (file type,
header, dtype, number of dimensions, emptiness) and then hands out float32
blocks in file order through :meth:`DescriptorSource.read`.  None of them
holds more than one block in memory: ``.npy`` files are memory-mapped,
``.npz`` members are read from the zip stream, CSV and Parquet files are read
in batches.
"""

from __future__ import annotations

import abc
import csv
import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from storage._errors import BadInputError

__all__ = ["DescriptorSource", "open_descriptor_source", "SUFFIXES"]

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


def _check_dtype(path: str | os.PathLike[str], dtype: np.dtype, where: str = "") -> None:
    # Integers and floats convert to float32 without surprises; booleans,
    # complex numbers, strings and objects are refused rather than guessed at.
    if dtype.kind not in "fiu":
        raise BadInputError(
            path,
            f"{where}dtype {dtype.str!r} ({dtype}) is not numeric; expected float or integer values",
        )


def _check_shape(path: str | os.PathLike[str], shape: tuple[int, ...], where: str = "") -> None:
    if len(shape) != 2:
        raise BadInputError(
            path, f"{where}array of shape {shape}; expected a 2-D array of shape (rows, dims)"
        )
    if shape[0] == 0:
        raise BadInputError(path, f"{where}array of shape {shape} has no rows; expected at least one row")
    if shape[1] == 0:
        raise BadInputError(path, f"{where}array of shape {shape} has no dims; expected at least one column")


class DescriptorSource(abc.ABC):
    """A descriptor file opened for sequential reading.

    Attributes
    ----------
    path : str
        The file being read.
    n_dims : int
        Floats per row.
    n_rows : int or None
        Rows in the file, or None where the format only tells at the end (CSV).
    """

    path: str
    n_dims: int
    n_rows: int | None

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._pos = 0

    @property
    def position(self) -> int:
        """Rows handed out so far."""
        return self._pos

    def read(self, n: int) -> np.ndarray:
        """Return the next at most ``n`` rows as a C-contiguous float32 array.

        Returns an array with 0 rows at the end of the file.
        """
        block = self._read(n)
        # float64 beyond float32's range becomes inf here and is reported as not finite.
        with np.errstate(over="ignore"):
            block = np.ascontiguousarray(block, dtype=np.float32)
        self._pos += block.shape[0]
        return block

    def describe_row(self, row: int) -> str:
        """Name row ``row`` (0-based) in the words a user of this format expects."""
        return f"row {row}"

    @abc.abstractmethod
    def _read(self, n: int) -> np.ndarray:
        """Next at most ``n`` rows in any numeric dtype; shape (<= n, n_dims)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the file."""

    def __enter__(self) -> DescriptorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NpySource(DescriptorSource):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        size = os.path.getsize(self.path)
        if size == 0:
            raise BadInputError(self.path, "empty file; expected a .npy array of shape (rows, dims)")
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                shape, fortran, dtype = _read_npy_header(f, version)
                offset = f.tell()
        except (ValueError, OSError, SyntaxError) as e:
            raise BadInputError(self.path, f"unreadable .npy header ({e}); expected a NumPy .npy file") from None
        _check_dtype(self.path, dtype)
        _check_shape(self.path, shape)
        expected = offset + int(np.prod(shape)) * dtype.itemsize
        if size < expected:
            raise BadInputError(
                self.path,
                f"truncated .npy: {size} bytes, the header promises {expected} for shape {shape} {dtype}",
            )
        self.n_rows, self.n_dims = int(shape[0]), int(shape[1])
        self._dtype, self._offset, self._fortran = dtype, offset, fortran
        self._whole: np.memmap | None = None
        if fortran:
            # Rows of a Fortran-ordered array are spread over the whole file; map it once.
            self._whole = np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F")
        self._window: np.memmap | None = None

    def _read(self, n: int) -> np.ndarray:
        n = min(n, self.n_rows - self._pos)
        if n <= 0:
            return np.empty((0, self.n_dims), self._dtype)
        if self._whole is not None:
            return self._whole[self._pos : self._pos + n]
        # One memory map per block, dropped before the next: the pages of rows already
        # stored leave this process's resident set instead of piling up to the file's size.
        self._drop_window()
        row_bytes = self.n_dims * self._dtype.itemsize
        self._window = np.memmap(
            self.path, dtype=self._dtype, mode="r", offset=self._offset + self._pos * row_bytes,
            shape=(n, self.n_dims),
        )
        return self._window

    def _drop_window(self) -> None:
        if self._window is not None:
            mm = getattr(self._window, "_mmap", None)
            self._window = None
            if mm is not None:
                try:
                    mm.close()
                except BufferError:  # a view of the block is still alive; let GC unmap it
                    pass

    def close(self) -> None:
        self._drop_window()
        self._whole = None


def _read_npy_header(f: IO[bytes], version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype]:
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unsupported .npy format version {version}")


class _NpzSource(DescriptorSource):
    def __init__(self, path: str | os.PathLike[str], key: str | None) -> None:
        super().__init__(path)
        if os.path.getsize(self.path) == 0:
            raise BadInputError(self.path, "empty file; expected a .npz archive holding one array")
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = [m for m in self._zip.namelist() if m.endswith(".npy")]
        except (zipfile.BadZipFile, OSError) as e:
            raise BadInputError(self.path, f"unreadable .npz ({e}); expected a NumPy .npz archive") from None
        names = [m[: -len(".npy")] for m in members]
        if key is None:
            if len(names) != 1:
                raise BadInputError(
                    self.path,
                    f"holds {len(names)} arrays {sorted(names)}; expected exactly one, or name it with --key",
                )
            key = names[0]
        if key not in names:
            raise BadInputError(self.path, f"no array named {key!r}; expected one of {sorted(names)}")
        self.key = key
        where = f"array {key!r}: "
        try:
            self._member = self._zip.open(key + ".npy")
            version = np.lib.format.read_magic(self._member)
            shape, fortran, dtype = _read_npy_header(self._member, version)
        except (ValueError, OSError, SyntaxError, zipfile.BadZipFile) as e:
            raise BadInputError(self.path, f"{where}unreadable ({e}); expected a NumPy array") from None
        _check_dtype(self.path, dtype, where)
        _check_shape(self.path, shape, where)
        if fortran:
            raise BadInputError(
                self.path,
                f"{where}is Fortran-ordered and cannot be streamed by rows; expected a C-ordered array "
                "(save it with numpy.ascontiguousarray)",
            )
        self.n_rows, self.n_dims = int(shape[0]), int(shape[1])
        self._dtype = dtype

    def _read(self, n: int) -> np.ndarray:
        n = min(n, self.n_rows - self._pos)
        if n <= 0:
            return np.empty((0, self.n_dims), self._dtype)
        want = n * self.n_dims * self._dtype.itemsize
        try:
            buf = self._member.read(want)
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise BadInputError(
                self.path, f"array {self.key!r}: unreadable after row {self._pos} ({e}); expected a complete archive"
            ) from None
        if len(buf) != want:
            raise BadInputError(
                self.path,
                f"array {self.key!r}: truncated after row {self._pos + len(buf) // (self.n_dims * self._dtype.itemsize)}"
                f"; the header promises {self.n_rows} rows",
            )
        return np.frombuffer(buf, dtype=self._dtype).reshape(n, self.n_dims)

    def close(self) -> None:
        self._zip.close()


class _CsvSource(DescriptorSource):
    """Numeric CSV, one row per descriptor; a header line is detected and skipped."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        import pandas as pd

        with open(self.path, newline="", encoding="utf-8", errors="replace") as f:
            first = next(csv.reader(f), None)
        if first is None or not any(cell.strip() for cell in first):
            raise BadInputError(self.path, "empty file; expected rows of comma-separated numbers")
        self._header = not all(_is_number(c) for c in first)
        self.columns = [c.strip() for c in first] if self._header else [str(i) for i in range(len(first))]
        self.n_dims = len(first)
        self.n_rows = None
        self._reader = pd.read_csv(
            self.path,
            header=0 if self._header else None,
            chunksize=1 << 16,
            skip_blank_lines=False,
            engine="c",
        )

    def describe_row(self, row: int) -> str:
        return f"row {row} (line {row + 1 + int(self._header)})"

    def _next_frame(self, n: int) -> Any:
        import pandas as pd

        try:
            return self._reader.get_chunk(n)
        except StopIteration:
            return None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise BadInputError(
                self.path,
                f"unreadable CSV after {self.describe_row(self._pos)} ({' '.join(str(e).split())}); "
                f"expected {self.n_dims} comma-separated numbers per line",
            ) from None

    def _read(self, n: int) -> np.ndarray:
        import pandas as pd

        frame = self._next_frame(n)
        if frame is None or len(frame) == 0:
            if self._pos == 0:
                raise BadInputError(self.path, "has a header but no rows; expected at least one row")
            return np.empty((0, self.n_dims), np.float32)
        if frame.shape[1] != self.n_dims:
            raise BadInputError(
                self.path, f"{frame.shape[1]} columns in a block; expected {self.n_dims} per line"
            )
        for j, dtype in enumerate(frame.dtypes):
            if dtype.kind not in "fiu":
                # Pandas fell back to text for this column: find its first non-number.
                text = frame.iloc[:, j].astype(str)
                bad = pd.to_numeric(text, errors="coerce").isna().to_numpy() & frame.iloc[:, j].notna().to_numpy()
                i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
                raise BadInputError(
                    self.path,
                    f"{self.describe_row(self._pos + i)}, column {self.columns[j]!r}: "
                    f"{text.iloc[i]!r} is not a number; expected numeric values",
                )
        return frame.to_numpy(dtype=np.float32)

    def close(self) -> None:
        self._reader.close()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _ParquetSource(DescriptorSource):
    """Parquet with numeric columns (one per dim) or a single list column of floats."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise BadInputError(
                self.path, "reading .parquet needs pyarrow; install it with pip install 'ivc[parquet]'"
            ) from None
        if os.path.getsize(self.path) == 0:
            raise BadInputError(self.path, "empty file; expected a Parquet file")
        try:
            self._file = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as e:
            raise BadInputError(self.path, f"unreadable Parquet ({e}); expected a Parquet file") from None
        schema = self._file.schema_arrow
        self.n_rows = int(self._file.metadata.num_rows)
        if self.n_rows == 0:
            raise BadInputError(self.path, "has no rows; expected at least one row")
        types = [schema.field(i).type for i in range(len(schema))]
        if len(types) == 1 and (pa.types.is_list(types[0]) or pa.types.is_fixed_size_list(types[0])
                                or pa.types.is_large_list(types[0])):
            self._list = True
            value_type = types[0].value_type
            if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
                raise BadInputError(
                    self.path, f"column {schema.names[0]!r} holds {value_type}; expected lists of numbers"
                )
            first = next(self._file.iter_batches(batch_size=1), None)
            self.n_dims = len(first.column(0)[0]) if first is not None else 0
        else:
            self._list = False
            for name, t in zip(schema.names, types):
                if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                    raise BadInputError(
                        self.path, f"column {name!r} has type {t}; expected numeric columns, one per dim"
                    )
            self.n_dims = len(types)
        if self.n_dims == 0:
            raise BadInputError(self.path, "rows have no dims; expected at least one number per row")
        self._batches = None

    def _read(self, n: int) -> np.ndarray:
        import pyarrow as pa

        if self._batches is None:
            self._batches = self._file.iter_batches(batch_size=n)
            self._carry = None
        parts = []
        have = 0
        while have < n:
            if self._carry is not None:
                block, self._carry = self._carry, None
            else:
                try:
                    batch = next(self._batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as e:
                    raise BadInputError(
                        self.path, f"unreadable after row {self._pos + have} ({e}); expected a complete file"
                    ) from None
                block = self._batch_to_array(batch)
            take = min(n - have, block.shape[0])
            parts.append(block[:take])
            if take < block.shape[0]:
                self._carry = block[take:]
            have += take
        if not parts:
            return np.empty((0, self.n_dims), np.float32)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _batch_to_array(self, batch: Any) -> np.ndarray:
        if self._list:
            col = batch.column(0)
            if col.null_count:
                raise BadInputError(self.path, f"a null list after row {self._pos}; expected {self.n_dims} numbers per row")
            flat = col.flatten().to_numpy(zero_copy_only=False)
            if flat.size != len(col) * self.n_dims:
                raise BadInputError(
                    self.path, f"lists of unequal length after row {self._pos}; expected {self.n_dims} numbers per row"
                )
            return flat.reshape(len(col), self.n_dims)
        cols = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(batch.num_columns)]
        return np.stack(cols, axis=1)

    def close(self) -> None:
        self._file.close()


def open_descriptor_source(path: str | os.PathLike[str], *, key: str | None = None) -> DescriptorSource:
    """Open a descriptor file for streaming, validating what can be known up front.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy``, ``.npz``, ``.csv`` or ``.parquet`` file of shape (rows, dims).
    key : str, optional
        The array to read from a ``.npz`` archive holding more than one.

    Returns
    -------
    DescriptorSource

    Raises
    ------
    BadInputError
        Unknown file type, missing, empty, truncated or unreadable file,
        non-numeric dtype or a shape other than (rows, dims).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise BadInputError(
            path, f"unknown descriptor file type {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if not p.is_file():
        raise BadInputError(path, "no such file; expected a descriptor file")
    if key is not None and suffix != ".npz":
        raise BadInputError(path, f"--key {key!r} applies to .npz archives only")
    if suffix == ".npy":
        return _NpySource(p)
    if suffix == ".npz":
        return _NpzSource(p, key)
    if suffix == ".csv":
        return _CsvSource(p)
    return _ParquetSource(p)
