"""Streaming reader for the crop index CSV that accompanies a descriptor file."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from storage._errors import BadInputError

__all__ = ["IndexReader", "RESERVED_COLUMNS", "check_column_name"]

#: Column names the store uses for itself in the index it hands back.
RESERVED_COLUMNS = frozenset({"row", "batch_id"})


def check_column_name(path: str | os.PathLike[str], name: str) -> None:
    """Refuse a column name that cannot become a zarr array name or clashes with ours."""
    if not name or name != name.strip():
        raise BadInputError(path, f"header column {name!r} is empty or padded; expected a plain name")
    if "/" in name or "\\" in name or name.startswith(".") or name.startswith("__"):
        raise BadInputError(
            path, f"header column {name!r} cannot name a stored array; expected no '/', '\\', leading '.' or '__'"
        )
    if name in RESERVED_COLUMNS:
        raise BadInputError(
            path, f"header column {name!r} is reserved; rename it (reserved: {', '.join(sorted(RESERVED_COLUMNS))})"
        )


class IndexReader:
    """Read an index CSV (header line with an ``image`` column) in row blocks.

    Every column is read as text; empty cells stay empty strings.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file with a header line; ``image`` (path or URL of the crop) is
        required, other columns are attributes (camera, timestamp, color...).

    Attributes
    ----------
    columns : list of str
        Header names in file order, ``image`` first.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import pandas as pd

        self.path = os.fspath(path)
        p = Path(path)
        if p.suffix.lower() != ".csv":
            raise BadInputError(path, f"unknown index file type {p.suffix or '(none)'!r}; expected a .csv file")
        if not p.is_file():
            raise BadInputError(path, "no such file; expected an index CSV with an 'image' column")
        if p.stat().st_size == 0:
            raise BadInputError(path, "empty file; expected a header line with an 'image' column")
        try:
            with open(p, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
        except UnicodeDecodeError as e:
            raise BadInputError(path, f"not UTF-8 text ({e.reason} at byte {e.start}); expected a UTF-8 CSV") from None
        if "image" not in header:
            found = ", ".join(repr(h) for h in header[:10]) or "nothing"
            raise BadInputError(
                path, f"no 'image' column in the header line (found {found}); expected a header with 'image'"
            )
        seen: set[str] = set()
        for name in header:
            check_column_name(path, name)
            if name in seen:
                raise BadInputError(path, f"header column {name!r} appears twice; expected unique names")
            seen.add(name)
        self.columns = ["image"] + [h for h in header if h != "image"]
        self._reader = pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            chunksize=1 << 16,
            encoding="utf-8",
            engine="c",
        )
        self._pos = 0

    @property
    def position(self) -> int:
        """Rows handed out so far."""
        return self._pos

    def read(self, n: int) -> dict[str, np.ndarray]:
        """Next at most ``n`` rows as ``{column: array of str}``; empty arrays at the end."""
        import pandas as pd

        try:
            frame = self._reader.get_chunk(n)
        except StopIteration:
            return {c: np.empty(0, dtype=object) for c in self.columns}
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise BadInputError(
                self.path,
                f"unreadable after row {self._pos} ({' '.join(str(e).split())}); "
                f"expected {len(self.columns)} comma-separated fields per line",
            ) from None
        out = {c: frame[c].to_numpy(dtype=object) for c in self.columns}
        images = out["image"]
        empty = images == ""
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise BadInputError(
                self.path, f"row {self._pos + i} (line {self._pos + i + 2}): empty 'image'; expected a path or URL"
            )
        self._pos += len(frame)
        return out

    def count_rest(self) -> int:
        """Read to the end and return the total number of rows."""
        while len(self.read(1 << 16)["image"]):
            pass
        return self._pos

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
