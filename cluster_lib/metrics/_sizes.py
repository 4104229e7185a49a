"""Cluster sizes of a (dask or numpy) label array, from per-chunk counts."""

from __future__ import annotations

from typing import Any

from ._passes import label_pass
from ._validation import as_label_array

__all__ = ["cluster_sizes"]


def cluster_sizes(labels: Any, *, split_every: int = 8) -> dict[int, int]:
    """Rows per label, counted chunk by chunk and combined by a tree reduction.

    Parameters
    ----------
    labels : dask or numpy array of shape (n_samples,), int
        Any integer labels; a noise label such as -1 is counted like any other.
    split_every : int, default=8
        Fan-in of the tree reduction.

    Returns
    -------
    sizes : dict of int to int
        ``{label: rows}``, labels in increasing order; empty for empty labels.

    Examples
    --------
    >>> import numpy as np
    >>> cluster_sizes(np.array([5, -1, 5, 17]))
    {-1: 1, 5: 2, 17: 1}
    """
    labels = as_label_array(labels)
    stats = label_pass(None, labels, noise_label=None, with_sums=False, split_every=split_every)
    return {int(lab): int(c) for lab, c in zip(stats.labels.tolist(), stats.counts.tolist())}
