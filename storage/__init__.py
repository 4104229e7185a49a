"""Storage: the zarr descriptor store and run directories, the only code that touches files.

Public API
----------
DescriptorStore, DescriptorSet, BatchInfo
    A store of named descriptor sets (chunked zarr v3 arrays) and its read side.
ingest, IngestResult
    Append a batch of descriptors and its crop index, atomically and idempotently.
open_descriptor_source
    Stream a ``.npy``/``.npz``/``.csv``/``.parquet`` descriptor file by row blocks.
BadInputError
    Bad input; its one-line message names the file and row or key.
"""

from __future__ import annotations

from storage._errors import BadInputError, StoreError
from storage._images import CropReader
from storage._index import IndexReader
from storage._ingest import DEFAULT_CHUNK_MIB, IngestResult, choose_chunk_rows, ingest
from storage._runs import RunWriter, latest_run, new_run_name, read_run
from storage._sources import DescriptorSource, open_descriptor_source
from storage._store import BatchInfo, DescriptorSet, DescriptorStore, StoreLocation

__all__ = [
    "BadInputError",
    "BatchInfo",
    "CropReader",
    "DEFAULT_CHUNK_MIB",
    "DescriptorSet",
    "DescriptorSource",
    "DescriptorStore",
    "IndexReader",
    "IngestResult",
    "RunWriter",
    "StoreError",
    "StoreLocation",
    "choose_chunk_rows",
    "ingest",
    "latest_run",
    "new_run_name",
    "read_run",
    "open_descriptor_source",
]
