"""The passes over the data: per-chunk kernels, a tree reduction, one compute each.

Each function here builds a graph of one task per row chunk (the kernels of
:mod:`._kernels`), combines their small results ``split_every`` at a time in a tree
of tasks, and computes the root with one ``dask.compute`` on whatever scheduler is
the default (threads, sync, or a distributed ``Client``). Only the root's small
statistics come back to the calling process.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed

from .._dask_utils import tree_reduce
from ._kernels import (
    LabelStats,
    distance_stats_chunk,
    label_stats_chunk,
    merge_label_stats,
    split_centers,
    sum_arrays,
)
from ._validation import work_dtype

__all__ = ["distance_pass", "label_pass"]

logger = logging.getLogger(__name__)


def _merge_label_list(parts: list[LabelStats]) -> LabelStats:
    return merge_label_stats(*parts)


def _sum_array_list(parts: list[np.ndarray]) -> np.ndarray:
    return sum_arrays(*parts)


def _row_blocks(X: da.Array | None, labels: da.Array) -> list[tuple[Delayed | None, Delayed]]:
    lab = labels.to_delayed().ravel().tolist()
    if X is None:
        return [(None, b) for b in lab]
    xs = X.to_delayed()[:, 0].tolist()
    return list(zip(xs, lab))


def label_pass(
    X: da.Array | None,
    labels: da.Array,
    *,
    noise_label: int | None,
    with_sums: bool,
    with_m2: bool = False,
    split_every: int = 8,
) -> LabelStats:
    """Pass 1: per label, counts (and float64 sums, and optionally m2) of all rows.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features) or None
        One column chunk, row chunks equal to ``labels``'. None for sizes only.
    labels : dask array of shape (n_samples,), int
    noise_label : int or None
    with_sums, with_m2 : bool
        See :func:`._kernels.label_stats_chunk`.
    split_every : int, default=8

    Returns
    -------
    LabelStats
        Over all rows, with the labels sorted.
    """
    dtype = work_dtype(X.dtype) if X is not None else None
    kernel = partial(
        label_stats_chunk, noise_label=noise_label, with_sums=with_sums, with_m2=with_m2, dtype=dtype
    )
    X = X if with_sums else None
    token = tokenize(None if X is None else X.name, labels.name, noise_label, with_sums, with_m2)
    parts = [
        dask.delayed(kernel, pure=True)(x, lab, dask_key_name=(f"ivc-label-stats-{token}", i))
        for i, (x, lab) in enumerate(_row_blocks(X, labels))
    ]
    root = tree_reduce(parts, _merge_label_list, split_every, name=f"ivc-label-merge-{token}")
    t0 = time.perf_counter()
    (stats,) = dask.compute(root)
    what = "counts" + (", sums" if with_sums else "") + (", m2" if with_m2 else "")
    logger.info(
        "pass 1 (%s) over %d chunks, %d rows: %.3f s",
        what,
        len(parts),
        labels.shape[0],
        time.perf_counter() - t0,
    )
    return stats


def distance_pass(
    X: da.Array,
    labels: da.Array,
    all_labels: np.ndarray,
    centroids: np.ndarray,
    *,
    noise_label: int | None,
    split_every: int = 8,
) -> np.ndarray:
    """Pass 2: per cluster, sums of squared and plain distances of members to the centroid.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        One column chunk, row chunks equal to ``labels``'.
    labels : dask array of shape (n_samples,), int
    all_labels : ndarray of shape (k,)
        Sorted distinct non-noise labels from pass 1.
    centroids : ndarray of shape (k, n_features), float64
        Centroid of every label in ``all_labels``.
    noise_label : int or None
    split_every : int, default=8

    Returns
    -------
    sums : ndarray of shape (2, k), float64
        Row 0: sum of squared distances; row 1: sum of distances.
    """
    centers = split_centers(centroids, work_dtype(X.dtype))
    # one key each for the small broadcast inputs, shared by every chunk task
    centers_d = dask.delayed(centers, pure=True, traverse=False)
    labels_d = dask.delayed(all_labels, pure=True, traverse=False)
    kernel = partial(distance_stats_chunk, noise_label=noise_label)
    token = tokenize(X.name, labels.name, all_labels, centroids, noise_label)
    parts = [
        dask.delayed(kernel, pure=True)(
            x, lab, labels_d, centers_d, dask_key_name=(f"ivc-distance-stats-{token}", i)
        )
        for i, (x, lab) in enumerate(_row_blocks(X, labels))
    ]
    root = tree_reduce(parts, _sum_array_list, split_every, name=f"ivc-distance-merge-{token}")
    t0 = time.perf_counter()
    (sums,) = dask.compute(root)
    logger.info(
        "pass 2 (distances to %d centroids) over %d chunks: %.3f s",
        all_labels.shape[0],
        len(parts),
        time.perf_counter() - t0,
    )
    return sums
