"""cluster_lib: clustering estimators, kernels and metrics on dask arrays (no file I/O)."""

from __future__ import annotations

from cluster_lib._kmeans import KMeans, kmeans_init
from cluster_lib._minibatch import MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans", "kmeans_init"]
