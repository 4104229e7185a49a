"""Silhouette score of a clustering of a dask array, on a seeded sample of rows.

The silhouette needs all pairwise distances, so it is computed exactly on a
sample: positions are drawn the way scikit-learn draws them
(``check_random_state(random_state).permutation(n)[:sample_size]``), sorted,
and only those rows are read (dask indexing touches only the chunks that hold
them); scikit-learn then scores the in-memory sample.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import sklearn.metrics
from sklearn.utils import check_random_state

from ._validation import check_noise_label, prepare_inputs

__all__ = ["silhouette_score"]

logger = logging.getLogger(__name__)


def _valid_counts(labels: da.Array, noise_label: int) -> np.ndarray:
    """Non-noise rows in every chunk of ``labels``, shape (n_chunks,)."""
    per_chunk = (labels != noise_label).map_blocks(
        lambda b: np.array([np.count_nonzero(b)], dtype=np.int64), chunks=(1,), dtype=np.int64
    )
    (counts,) = dask.compute(per_chunk)
    return counts


def _positions_of_ranks(b: np.ndarray, ranks: np.ndarray, noise_label: int, offset: int) -> np.ndarray:
    return np.flatnonzero(b != noise_label)[ranks] + offset


def _sample_positions(
    labels: da.Array, ranks: np.ndarray, noise_label: int | None, counts: np.ndarray | None
) -> np.ndarray:
    """Row positions of the sorted non-noise ``ranks`` (the k-th non-noise row has rank k)."""
    if noise_label is None:
        return ranks
    ends = np.cumsum(counts)
    where = np.searchsorted(ends, ranks, side="right")
    offsets = np.cumsum((0,) + labels.chunks[0][:-1])
    blocks = labels.to_delayed().ravel()
    tasks = []
    for c in np.unique(where):
        local = ranks[where == c] - (ends[c] - counts[c])
        tasks.append(dask.delayed(_positions_of_ranks)(blocks[c], local, noise_label, int(offsets[c])))
    return np.concatenate(dask.compute(*tasks)) if tasks else np.empty(0, dtype=np.int64)


def silhouette_score(
    X: Any,
    labels: Any,
    *,
    sample_size: int | None = 10000,
    random_state: int | np.random.RandomState | None = None,
    metric: str = "euclidean",
    noise_label: int | None = None,
) -> float:
    """Mean silhouette coefficient of a seeded sample of the rows.

    Parameters
    ----------
    X : dask or numpy array of shape (n_samples, n_features)
    labels : dask or numpy array of shape (n_samples,), int
    sample_size : int or None, default=10000
        Rows to score, drawn without replacement. None, or a value of at least
        the number of (non-noise) rows, scores all of them: the result is then
        :func:`sklearn.metrics.silhouette_score` of the whole data.
    random_state : int, RandomState or None, default=None
        Seed of the draw. With the same seed and ``sample_size`` the rows drawn
        are the ones :func:`sklearn.metrics.silhouette_score` would draw, whatever
        the chunking of ``X``.
    metric : str, default="euclidean"
        Passed to :func:`sklearn.metrics.silhouette_score`.
    noise_label : int or None, default=None
        Label of rows to exclude before sampling (e.g. -1 for DBSCAN noise);
        None keeps every row, with every label a cluster.

    Returns
    -------
    score : float
        In [-1, 1]; ``nan`` (with a ``RuntimeWarning``) when the sample does not
        hold between 2 and ``len(sample) - 1`` distinct labels, where
        scikit-learn would raise.

    Notes
    -----
    The positions are drawn from a permutation of all the (non-noise) row
    positions, as scikit-learn draws them: 8 bytes per row in this process.
    """
    if sample_size is not None and (
        isinstance(sample_size, bool) or not isinstance(sample_size, int | np.integer) or sample_size < 1
    ):
        raise ValueError(f"sample_size={sample_size!r} should be an int >= 1 or None.")
    noise_label = check_noise_label(noise_label)
    X, labels = prepare_inputs(X, labels)
    t0 = time.perf_counter()
    counts = None if noise_label is None else _valid_counts(labels, noise_label)
    n_valid = X.shape[0] if counts is None else int(counts.sum())
    if sample_size is None or sample_size >= n_valid:
        if noise_label is None:
            Xs, ls = X, labels
        else:
            keep = labels != noise_label
            Xs, ls = X[keep], labels[keep]
    else:
        rs = check_random_state(random_state)
        ranks = np.sort(rs.permutation(n_valid)[:sample_size])
        keep = _sample_positions(labels, ranks, noise_label, counts)
        Xs, ls = X[keep], labels[keep]
    Xs, ls = dask.compute(Xs, ls)
    logger.info(
        "silhouette: gathered %d of %d rows: %.3f s", ls.shape[0], X.shape[0], time.perf_counter() - t0
    )
    n_labels = np.unique(ls).shape[0]
    if not 1 < n_labels < ls.shape[0]:
        warnings.warn(
            f"silhouette_score: the sample of {ls.shape[0]} rows holds {n_labels} distinct labels; "
            "valid values are 2 to sample size - 1 (inclusive). Returning nan.",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    t0 = time.perf_counter()
    score = float(sklearn.metrics.silhouette_score(Xs, ls, metric=metric))
    logger.info("silhouette: scored %d rows: %.3f s", ls.shape[0], time.perf_counter() - t0)
    return score
