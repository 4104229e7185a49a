"""Mini-batch k-means streaming over the chunks of a dask array.

scikit-learn's update rule (Sculley 2010, as in ``sklearn.cluster.MiniBatchKMeans``):
each center is the running mean of the rows ever assigned to it, so a batch moves
center ``j`` by ``(sum of its new rows - n_new * c_j) / (n_seen_j + n_new)``; centers
that gather too little weight are re-assigned to random rows of the batch.

The updates are sequential by nature, so an epoch is a chain of tasks, one per
chunk in a seeded random order: each task runs where its chunk lives, walks the
chunk in random mini-batches and hands the small state (centers and per-center
weights, k x d numbers) to the next.  No rows move between workers.
"""

from __future__ import annotations

import logging
import time
from numbers import Integral, Real
from typing import Any

import dask
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state

from cluster_lib._compat import Interval, StrOptions
from cluster_lib._dask_utils import row_blocks
from cluster_lib._kmeans import KMeans, _weight_blocks, kmeans_init
from cluster_lib._lloyd import assign_chunk

__all__ = ["MiniBatchKMeans", "minibatch_chunk"]

logger = logging.getLogger(__name__)


def minibatch_chunk(
    state: tuple[np.ndarray, np.ndarray, float, int],
    X: np.ndarray,
    w: np.ndarray | None,
    mean: np.ndarray,
    batch_size: int,
    reassignment_ratio: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Apply mini-batch updates for the rows of one chunk, in random batches.

    Parameters
    ----------
    state : (centers, weight_sums, inertia_sum, n_batches)
        Centers (k, d) float64 in centred coordinates, weight seen per center (k,),
        and the running sum of batch inertias (per row) and batch count of this epoch.
    X : ndarray of shape (n, d)
    w : ndarray of shape (n,) or None
    mean : ndarray of shape (d,)
    batch_size : int
    reassignment_ratio : float
    seed : int

    Returns
    -------
    The updated state.
    """
    centers, weight_sums, inertia_sum, n_batches = state
    centers = centers.copy()
    weight_sums = weight_sums.copy()
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    k, d = centers.shape
    order = rng.permutation(n)
    mu = np.asarray(mean, dtype=np.float64)
    for s in range(0, n, batch_size):
        idx = np.sort(order[s : s + batch_size])
        xb = np.asarray(X[idx])
        wb = np.ones(len(idx)) if w is None else np.asarray(w[idx], dtype=np.float64)
        labels, dist = assign_chunk(xb, centers.astype(np.float32), mu)
        inertia_sum += float(np.dot(dist, wb)) / max(wb.sum(), 1e-300)
        n_batches += 1
        xc = xb.astype(np.float64) - mean
        batch_w = np.bincount(labels, weights=wb, minlength=k)
        batch_sum = np.zeros((k, d))
        np.add.at(batch_sum, labels, xc * wb[:, None])
        hit = batch_w > 0
        new_w = weight_sums[hit] + batch_w[hit]
        centers[hit] += (batch_sum[hit] - batch_w[hit, None] * centers[hit]) / new_w[:, None]
        weight_sums[hit] = new_w
        if reassignment_ratio > 0:
            # like scikit-learn: centers with far less weight than the heaviest one move to random rows
            low = weight_sums < reassignment_ratio * weight_sums.max()
            if low.any() and low.sum() < k:
                m = min(int(low.sum()), int(0.5 * len(idx)) or 1)
                targets = np.flatnonzero(low)[:m]
                pick = rng.choice(len(idx), size=len(targets), replace=False)
                centers[targets] = xc[pick]
                weight_sums[targets] = np.min(weight_sums[~low])
    return centers, weight_sums, inertia_sum, n_batches


class MiniBatchKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """Mini-batch k-means on a dask array, streaming over its chunks.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "k-means||", "random"} or ndarray, default="k-means++"
        As for :class:`cluster_lib.KMeans` (k-means++ runs on a seeded sample).
    max_iter : int, default=10
        Epochs: full passes over the data (scikit-learn's default of 100 assumes
        data that fits in memory; over millions of rows a few epochs converge).
    batch_size : int, default=1024
    tol : float, default=0.0
        Stop when the centers move (sum of squared shifts over an epoch) by no more
        than ``tol`` times the mean per-feature variance.
    max_no_improvement : int or None, default=3
        Stop after this many epochs without a lower mean batch inertia.
    reassignment_ratio : float, default=0.01
    random_state : int, RandomState instance or None, default=None
    persist : bool or "auto", default="auto"
    init_sample_size : int, optional

    Attributes
    ----------
    cluster_centers_, labels_, inertia_, n_iter_, n_steps_, n_features_in_
        As for :class:`cluster_lib.KMeans`; ``n_iter_`` counts epochs and ``n_steps_``
        mini-batches; ``inertia_`` is the true sum of squared distances of the data.
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "k-means||", "random"}), np.ndarray],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        "reassignment_ratio": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "persist": ["boolean", StrOptions({"auto"})],
        "init_sample_size": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        max_iter: int = 10,
        batch_size: int = 1024,
        tol: float = 0.0,
        max_no_improvement: int | None = 3,
        reassignment_ratio: float = 0.01,
        random_state: Any = None,
        persist: bool | str = "auto",
        init_sample_size: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.reassignment_ratio = reassignment_ratio
        self.random_state = random_state
        self.persist = persist
        self.init_sample_size = init_sample_size

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Fit by mini-batch updates over every chunk, for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : dask array or array-like of shape (n_samples,), optional
        """
        t0 = time.perf_counter()
        random_state = check_random_state(self.random_state)
        fin = self._prepare_fit(X, sample_weight)
        X, w, mean, tol = fin.X, fin.w, fin.mean, fin.tol
        centers = kmeans_init(X, self.n_clusters, init=self.init, mean=mean, sample_weight=w,
                              random_state=random_state, sample_size=self.init_sample_size)
        blocks = row_blocks(X)
        wblocks = _weight_blocks(w, len(blocks))
        state = (np.asarray(centers, np.float64), np.zeros(self.n_clusters), 0.0, 0)
        best, stale, steps = np.inf, 0, 0
        self.epoch_seconds_ = []
        for epoch in range(1, self.max_iter + 1):
            t = time.perf_counter()
            order = random_state.permutation(len(blocks))
            seeds = random_state.randint(2**31 - 1, size=len(blocks))
            node: Any = (state[0], state[1], 0.0, 0)
            for i in order:
                node = dask.delayed(minibatch_chunk, pure=True)(
                    node, blocks[i], wblocks[i], mean, self.batch_size, self.reassignment_ratio, int(seeds[i])
                )
            (new_state,) = dask.compute(node)
            shift = float(((new_state[0] - state[0]) ** 2).sum())
            epoch_inertia = new_state[2] / max(new_state[3], 1)
            steps += new_state[3]
            state = new_state
            self.epoch_seconds_.append(time.perf_counter() - t)
            logger.info("epoch %d: mean batch inertia %.6g, center shift %.3g, %.2f s",
                        epoch, epoch_inertia, shift, self.epoch_seconds_[-1])
            if shift <= tol:
                break
            if epoch_inertia < best:
                best, stale = epoch_inertia, 0
            else:
                stale += 1
                if self.max_no_improvement is not None and stale >= self.max_no_improvement:
                    break
        self._finish_fit(fin, state[0])
        self.n_iter_ = epoch
        self.n_steps_ = steps
        self.timings_ = {"total": time.perf_counter() - t0}
        return self

    # Input checks, the final pass and predict / transform / score are those of KMeans.
    _prepare_fit = KMeans._prepare_fit
    _finish_fit = KMeans._finish_fit
    _check_fitted_input = KMeans._check_fitted_input
    predict = KMeans.predict
    transform = KMeans.transform
    score = KMeans.score
