"""Exact Calinski-Harabasz and Davies-Bouldin scores of a clustering of a dask array.

Both scores are functions of small per-cluster statistics:

* Calinski-Harabasz needs per cluster the count, the float64 sum of the rows and
  the within-cluster sum of squared distances to the centroid;
* Davies-Bouldin needs per cluster the count, the sum of the rows (the centroid)
  and the sum of euclidean distances of its rows to the centroid.

Pass 1 collects counts and sums per label (the labels found are the label ->
position mapping); pass 2, given the centroids, collects the sums of squared and
plain distances. Computed together they share both passes. Calinski-Harabasz on
its own takes one pass: each chunk measures its rows' squares about the chunk's
own means and the merge moves them to the global means exactly, never forming
``sum ||x||^2 - n ||mean||^2`` (which cancels on uncentered data).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._kernels import LabelStats, centroid_distance_rows
from ._passes import distance_pass, label_pass
from ._validation import check_noise_label, check_number_of_labels, prepare_inputs

__all__ = [
    "ClusterScores",
    "calinski_harabasz_score",
    "cluster_scores",
    "davies_bouldin_score",
]

logger = logging.getLogger(__name__)

_SCORES = ("calinski_harabasz", "davies_bouldin")


@dataclass(frozen=True)
class ClusterScores:
    """What :func:`cluster_scores` measured.

    Attributes
    ----------
    calinski_harabasz : float or None
        None when not asked for.
    davies_bouldin : float or None
        None when not asked for.
    n_samples : int
        Rows scored (noise rows excluded).
    n_clusters : int
        Distinct labels among the scored rows.
    n_noise : int
        Rows excluded as noise (0 when ``noise_label`` is None).
    sizes : dict of int to int
        Rows per label, labels in increasing order, the noise label excluded.
    """

    calinski_harabasz: float | None
    davies_bouldin: float | None
    n_samples: int
    n_clusters: int
    n_noise: int
    sizes: dict[int, int] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (labels of ``sizes`` as strings)."""
        return {
            "calinski_harabasz": self.calinski_harabasz,
            "davies_bouldin": self.davies_bouldin,
            "n_samples": self.n_samples,
            "n_clusters": self.n_clusters,
            "n_noise": self.n_noise,
            "sizes": {str(k): v for k, v in self.sizes.items()},
        }


def _check_which(which: str | Iterable[str]) -> tuple[str, ...]:
    chosen = (which,) if isinstance(which, str) else tuple(which)
    bad = [w for w in chosen if w not in _SCORES]
    if bad or not chosen:
        raise ValueError(f"which={which!r} should name one or more of {list(_SCORES)}.")
    return tuple(w for w in _SCORES if w in chosen)


def _check_stats(stats: LabelStats) -> None:
    if stats.sums is not None and not np.isfinite(stats.sums).all():
        raise ValueError("Input X contains NaN or infinity.")
    check_number_of_labels(stats.labels.shape[0], int(stats.counts.sum()))


def _calinski_harabasz(counts: np.ndarray, sums: np.ndarray, within: np.ndarray) -> float:
    """Calinski-Harabasz from per-cluster counts (k,), sums (k, d) and within sums of squares (k,).

    Assumes ``2 <= k <= n - 1``; mirrors scikit-learn, including 1.0 when every
    cluster has zero dispersion.
    """
    n = int(counts.sum())
    k = counts.shape[0]
    means = sums / counts[:, None]
    dev = means - sums.sum(axis=0) / n
    extra = float(np.dot(counts, np.einsum("ij,ij->i", dev, dev)))
    intra = float(within.sum())
    return 1.0 if intra == 0.0 else extra * (n - k) / (intra * (k - 1.0))


def _davies_bouldin(centroids: np.ndarray, intra: np.ndarray) -> float:
    """Davies-Bouldin from centroids (k, d) and mean member-to-centroid distances (k,).

    Mirrors scikit-learn (0.0 when all spreads or all centroid distances are
    within 1e-8 of 0; centroids at distance exactly 0 never pair up), but works
    through the k x k distance matrix a block of rows at a time.
    """
    k = centroids.shape[0]
    centered = centroids - centroids.mean(axis=0)
    sqnorms = np.einsum("ij,ij->i", centered, centered)
    scores = np.empty(k)
    any_apart = False
    step = max(1, (1 << 22) // k)
    for start in range(0, k, step):
        rows = slice(start, min(k, start + step))
        dist = centroid_distance_rows(centroids, centered, sqnorms, rows)
        any_apart = any_apart or bool((dist > 1e-8).any())
        dist[dist == 0] = np.inf
        ratio = intra[rows, None] + intra[None, :]
        ratio /= dist
        scores[rows] = ratio.max(axis=1)
    if np.all(np.abs(intra) <= 1e-8) or not any_apart:
        return 0.0
    return float(scores.mean())


def cluster_scores(
    X: Any,
    labels: Any,
    *,
    which: str | Iterable[str] = _SCORES,
    noise_label: int | None = None,
    split_every: int = 8,
) -> ClusterScores:
    """Calinski-Harabasz and Davies-Bouldin scores of a clustering, sharing the passes.

    Equal to :func:`sklearn.metrics.calinski_harabasz_score` and
    :func:`sklearn.metrics.davies_bouldin_score` on the same data, for any
    chunking, but computed chunk by chunk: at most two passes over ``X`` (one
    for Calinski-Harabasz alone), and only per-cluster statistics come back to
    this process.

    Parameters
    ----------
    X : dask or numpy array of shape (n_samples, n_features)
        The rows. A numpy array is wrapped in a dask array (with ``labels``' row
        chunks when they are a dask array, else dask's automatic chunking).
        float32 rows are not copied to float64; accumulation is float64.
    labels : dask or numpy array of shape (n_samples,), int
        Cluster of every row; any integer values (not necessarily 0..k-1).
        Rechunked to ``X``'s row chunks when they differ.
    which : str or iterable of str, default=("calinski_harabasz", "davies_bouldin")
        Scores to compute.
    noise_label : int or None, default=None
        None scores every row, with every label a cluster (as scikit-learn does,
        -1 included). An int excludes the rows with that label before scoring:
        with DBSCAN or HDBSCAN labels, ``noise_label=-1`` scores the clusters
        without the noise points, which is usually what is wanted.
    split_every : int, default=8
        Fan-in of the tree reduction.

    Returns
    -------
    ClusterScores
        The scores asked for (None for the others), rows scored, clusters,
        noise rows and cluster sizes.

    Raises
    ------
    ValueError
        If the number of labels (after removing noise) is not between 2 and
        n_samples - 1, as scikit-learn raises; if ``X`` contains NaN or
        infinity; if the inputs' shapes or dtypes are wrong.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> X = da.from_array(np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 4.0]]), chunks=(2, 2))
    >>> s = cluster_scores(X, np.array([0, 0, 1]), which="davies_bouldin")
    >>> round(s.davies_bouldin, 4)
    0.128
    """
    chosen = _check_which(which)
    noise_label = check_noise_label(noise_label)
    X, labels = prepare_inputs(X, labels)
    ch_only = chosen == ("calinski_harabasz",)
    stats = label_pass(
        X, labels, noise_label=noise_label, with_sums=True, with_m2=ch_only, split_every=split_every
    )
    _check_stats(stats)
    centroids = stats.sums / stats.counts[:, None]
    if ch_only:
        within, dist_sums = stats.m2, None
    else:
        within, dist_sums = distance_pass(
            X, labels, stats.labels, centroids, noise_label=noise_label, split_every=split_every
        )
    ch = db = None
    if "calinski_harabasz" in chosen:
        ch = _calinski_harabasz(stats.counts, stats.sums, within)
    if "davies_bouldin" in chosen:
        db = _davies_bouldin(centroids, dist_sums / stats.counts)
    return ClusterScores(
        calinski_harabasz=ch,
        davies_bouldin=db,
        n_samples=int(stats.counts.sum()),
        n_clusters=int(stats.labels.shape[0]),
        n_noise=stats.n_noise,
        sizes={int(lab): int(c) for lab, c in zip(stats.labels.tolist(), stats.counts.tolist())},
    )


def calinski_harabasz_score(X: Any, labels: Any, *, noise_label: int | None = None) -> float:
    """Calinski-Harabasz score (variance ratio criterion) of a clustering of a dask array.

    Equal to :func:`sklearn.metrics.calinski_harabasz_score`, in one pass over
    ``X``. See :func:`cluster_scores` for the parameters and errors.

    Parameters
    ----------
    X : dask or numpy array of shape (n_samples, n_features)
    labels : dask or numpy array of shape (n_samples,), int
    noise_label : int or None, default=None
        Label of rows to exclude before scoring (e.g. -1 for DBSCAN noise).

    Returns
    -------
    score : float
        Higher is better; 1.0 when every cluster has zero dispersion.
    """
    return cluster_scores(X, labels, which="calinski_harabasz", noise_label=noise_label).calinski_harabasz


def davies_bouldin_score(X: Any, labels: Any, *, noise_label: int | None = None) -> float:
    """Davies-Bouldin score of a clustering of a dask array.

    Equal to :func:`sklearn.metrics.davies_bouldin_score`, in two passes over
    ``X``. See :func:`cluster_scores` for the parameters and errors.

    Parameters
    ----------
    X : dask or numpy array of shape (n_samples, n_features)
    labels : dask or numpy array of shape (n_samples,), int
    noise_label : int or None, default=None
        Label of rows to exclude before scoring (e.g. -1 for DBSCAN noise).

    Returns
    -------
    score : float
        Lower is better, 0 at best.
    """
    return cluster_scores(X, labels, which="davies_bouldin", noise_label=noise_label).davies_bouldin
