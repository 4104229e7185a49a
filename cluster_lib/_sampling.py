"""Seeded samples of rows per cluster, drawn partition-wise.

Every row gets a pseudo-random key from ``(seed, chunk index)``; each chunk keeps,
per label, the rows with the ``m`` smallest keys, and merging keeps the ``m``
smallest again.  The result is a uniform sample without replacement of each
cluster (all of it when it has at most ``m`` rows), identical for the same seed
and chunking, and never more than ``m`` rows per label in flight.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

__all__ = ["sample_per_cluster"]


def _chunk_sample(labels: np.ndarray, offset: int, seed: int, index: int, m: int) -> tuple[np.ndarray, ...]:
    keys = np.random.default_rng([seed, index]).random(labels.shape[0])
    order = np.lexsort((keys, labels))
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    rank = np.arange(lab.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, lab.shape[0]]))
    keep = order[rank < m]
    return labels[keep], keys[keep], keep + offset


def _merge(parts: list[tuple[np.ndarray, ...]], m: int) -> tuple[np.ndarray, ...]:
    lab = np.concatenate([p[0] for p in parts])
    keys = np.concatenate([p[1] for p in parts])
    rows = np.concatenate([p[2] for p in parts])
    order = np.lexsort((keys, lab))
    lab, keys, rows = lab[order], keys[order], rows[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]]) if lab.size else np.array([], int)
    rank = np.arange(lab.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, lab.shape[0]]))
    keep = rank < m
    return lab[keep], keys[keep], rows[keep]


def sample_per_cluster(labels: Any, m: int, random_state: int | None = 0) -> dict[int, np.ndarray]:
    """Up to ``m`` rows of every cluster, drawn uniformly at random without replacement.

    Parameters
    ----------
    labels : dask or numpy array of shape (n_samples,), int
    m : int
        Rows per cluster.
    random_state : int or None

    Returns
    -------
    dict
        label -> sorted row indices (at most ``m`` each).
    """
    if not isinstance(labels, da.Array):
        labels = da.from_array(np.asarray(labels), chunks=1 << 20)
    seed = 0 if random_state is None else int(random_state)
    offsets = np.r_[0, np.cumsum(labels.chunks[0])[:-1]]
    parts = [
        dask.delayed(_chunk_sample, pure=True)(b, int(o), seed, i, m)
        for i, (b, o) in enumerate(zip(labels.to_delayed().ravel(), offsets))
    ]
    while len(parts) > 1:
        parts = [dask.delayed(_merge, pure=True)(parts[i : i + 8], m) for i in range(0, len(parts), 8)]
    lab, _, rows = dask.compute(parts[0])[0]
    return {int(k): np.sort(rows[lab == k]) for k in np.unique(lab)}
