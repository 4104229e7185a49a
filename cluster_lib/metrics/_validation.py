"""Input normalisation for the metrics: one dask array of rows, one aligned dask array of labels.

Everything loose (numpy arrays, lists, dask arrays with other chunkings) is turned
into a pair ``(X, labels)`` here, once, so that the passes can assume clean input:
``X`` is 2-D with a single column chunk, ``labels`` is 1-D with integer dtype and
exactly ``X``'s row chunks.
"""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np

__all__ = [
    "as_label_array",
    "check_noise_label",
    "check_number_of_labels",
    "prepare_inputs",
    "work_dtype",
]


def _has_unknown_chunks(a: da.Array) -> bool:
    return any(math.isnan(c) for dim in a.chunks for c in dim)


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The float dtype the per-chunk kernels compute in for input of ``dtype``.

    float32 stays float32 (the kernels are written to stay exact with it: float64
    accumulation, compensated centroids); every other real dtype becomes float64.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise ValueError(f"X must hold real numbers, got dtype={dtype}.")


def as_label_array(labels: Any, chunks: tuple[int, ...] | None = None) -> da.Array:
    """Validate ``labels`` as a 1-D integer array and return it as a dask array.

    Parameters
    ----------
    labels : dask or numpy array of shape (n_samples,)
        Integer cluster labels.
    chunks : tuple of int, optional
        Row chunks to give the result (``X``'s row chunks). Without it, a numpy
        input gets dask's automatic chunking and a dask input keeps its own.

    Returns
    -------
    labels : dask array of shape (n_samples,)
    """
    if not isinstance(labels, da.Array):
        labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D of shape (n_samples,), got shape {labels.shape}.")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype={labels.dtype}.")
    if not isinstance(labels, da.Array):
        return da.from_array(labels, chunks=chunks if chunks is not None else "auto")
    if _has_unknown_chunks(labels):
        labels = labels.compute_chunk_sizes()
    if chunks is not None and labels.chunks[0] != tuple(chunks):
        labels = labels.rechunk((tuple(chunks),))
    return labels


def prepare_inputs(X: Any, labels: Any) -> tuple[da.Array, da.Array]:
    """Validate ``X`` and ``labels`` and align them chunk for chunk.

    Parameters
    ----------
    X : dask or numpy array of shape (n_samples, n_features)
        Rows to score. A numpy array is wrapped with the labels' row chunks when
        the labels are a dask array, else with dask's automatic row chunking.
    labels : dask or numpy array of shape (n_samples,)
        Integer cluster label of every row.

    Returns
    -------
    X : dask array of shape (n_samples, n_features)
        With one chunk along the features.
    labels : dask array of shape (n_samples,)
        Integer, with exactly ``X``'s row chunks.
    """
    if not isinstance(labels, da.Array):
        labels = np.asarray(labels)
    elif _has_unknown_chunks(labels):
        labels = labels.compute_chunk_sizes()
    if not isinstance(X, da.Array):
        X = np.asarray(X)
        if X.ndim == 2 and isinstance(labels, da.Array) and labels.shape[0] == X.shape[0]:
            X = da.from_array(X, chunks=(labels.chunks[0], -1))
        elif X.ndim == 2:
            X = da.from_array(X, chunks=("auto", -1))
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got shape {X.shape}.")
    if _has_unknown_chunks(X):
        raise ValueError(
            "X has unknown chunk sizes; call X.compute_chunk_sizes() (or persist it) before scoring."
        )
    work_dtype(X.dtype)
    if X.shape[1] == 0:
        raise ValueError(f"X has 0 features, shape {X.shape}; a minimum of 1 is required.")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    n_labels_rows = labels.shape[0] if labels.ndim else 0
    if labels.ndim == 1 and n_labels_rows != X.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"X has {X.shape[0]} rows, labels has {n_labels_rows}."
        )
    labels = as_label_array(labels, chunks=X.chunks[0])
    return X, labels


def check_number_of_labels(n_labels: int, n_samples: int) -> None:
    """Raise scikit-learn's ``ValueError`` unless ``2 <= n_labels <= n_samples - 1``."""
    if not 1 < n_labels < n_samples:
        raise ValueError(
            f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 (inclusive)"
        )


def check_noise_label(noise_label: Any) -> int | None:
    """Return ``noise_label`` as an int, or None; raise ``ValueError`` for anything else."""
    if noise_label is None:
        return None
    if isinstance(noise_label, bool) or not isinstance(noise_label, int | np.integer):
        raise ValueError(f"noise_label={noise_label!r} should be an int or None.")
    return int(noise_label)
