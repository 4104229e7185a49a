"""cluster_lib: clustering estimators, kernels and metrics on dask arrays (no file I/O)."""

from __future__ import annotations

__all__: list[str] = []
