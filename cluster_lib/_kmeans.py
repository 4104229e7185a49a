"""Parallel k-means on dask arrays: Lloyd iterations as one map-reduce pass each.

Each iteration sends the current centers (k x d, small) to every chunk, runs the
fused kernel of :mod:`cluster_lib._lloyd` where the chunk lives, and adds the
per-chunk statistics up in a tree: one ``compute`` per iteration, nothing but
k x d numbers coming back.  The data stays on the workers (persisted when it
fits in their memory) or is read again from its source, chunk by chunk, on
every pass.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from cluster_lib._compat import Interval, StrOptions, validate_params
from cluster_lib._dask_utils import (
    as_dask_2d,
    blocks_by_worker,
    check_fitted_input,
    maybe_persist,
    persist_with,
    row_blocks,
    sample_rows,
    sum_values,
    tree_reduce,
)
from cluster_lib._lloyd import LloydStats, assign_chunk, combine_stats, lloyd_chunk

__all__ = ["KMeans", "kmeans_init"]

logger = logging.getLogger(__name__)

#: Rows drawn for k-means++ on a sample: this many per cluster, at least MIN_INIT_SAMPLE.
INIT_ROWS_PER_CLUSTER = 100
MIN_INIT_SAMPLE = 10_000


def _weights_like(sample_weight: Any, X: da.Array) -> da.Array | None:
    if sample_weight is None:
        return None
    if isinstance(sample_weight, da.Array):
        w = sample_weight.astype(np.float64)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(X.shape[0], float(w))
        w = da.from_array(w, chunks=(X.chunks[0],))
    if w.ndim != 1 or w.shape[0] != X.shape[0]:
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({X.shape[0]},)!")
    if w.chunks[0] != X.chunks[0]:
        w = w.rechunk((X.chunks[0],))
    return w


def _weight_blocks(w: da.Array | None, n_blocks: int) -> list[Any]:
    return [None] * n_blocks if w is None else list(w.to_delayed().ravel())


def _lloyd_group(blocks: list[np.ndarray], C: np.ndarray, mu: np.ndarray, weights: list[Any],
                 n_far: int) -> LloydStats:
    """The statistics of several chunks that live on one worker, in one task."""
    return combine_stats([lloyd_chunk(b, C, mu, w, n_far) for b, w in zip(blocks, weights)], n_far)


def _lloyd_pass(blocks: list[Any], wblocks: list[Any], centers: np.ndarray, mean: np.ndarray,
                n_far: int, groups: list[list[int]] | None = None) -> LloydStats:
    C = dask.delayed(np.asarray(centers, dtype=np.float32), pure=True)
    mu = dask.delayed(np.asarray(mean, dtype=np.float64), pure=True)
    groups = groups or [[i] for i in range(len(blocks))]
    parts = [
        dask.delayed(_lloyd_group, pure=True)([blocks[i] for i in g], C, mu, [wblocks[i] for i in g], n_far)
        for g in groups
    ]
    if len(parts) <= 16:
        # a few per-worker results: adding them here saves the reduction's extra task hop
        return combine_stats(list(dask.compute(*parts)), n_far)
    total = tree_reduce(parts, lambda ps: combine_stats(ps, n_far))
    (stats,) = dask.compute(total)
    return stats


def _weighted_dist_sum(pair: tuple[np.ndarray, np.ndarray], w: np.ndarray | None) -> float:
    dist = pair[1].astype(np.float64)
    return float(dist.sum() if w is None else np.dot(dist, w))


def _labels_and_inertia(X: da.Array, w: da.Array | None, centers: np.ndarray, mean: np.ndarray,
                        keep_labels: bool = True) -> tuple[da.Array | None, float]:
    """Labels of every row (a persisted dask array) and the weighted sum of squared distances, in one pass.

    With ``keep_labels=False`` only the inertia is computed and no labels are returned.
    """
    blocks = row_blocks(X)
    C = dask.delayed(np.asarray(centers, dtype=np.float32), pure=True)
    mu = dask.delayed(np.asarray(mean, dtype=np.float64), pure=True)
    pairs = [dask.delayed(assign_chunk, pure=True)(b, C, mu) for b in blocks]
    label_parts = [
        da.from_delayed(p[0], shape=(nb,), dtype=np.int32) for p, nb in zip(pairs, X.chunks[0])
    ]
    labels = da.concatenate(label_parts)
    sums = [dask.delayed(_weighted_dist_sum, pure=True)(p, wb) for p, wb in zip(pairs, _weight_blocks(w, len(blocks)))]
    inertia = tree_reduce(sums, sum_values)
    if not keep_labels:
        return None, float(dask.compute(inertia)[0])
    labels, (inertia,) = persist_with(labels, inertia)
    return labels, float(inertia)


def kmeans_init(
    X: da.Array,
    n_clusters: int,
    *,
    init: str | np.ndarray = "k-means++",
    mean: np.ndarray,
    sample_weight: da.Array | None = None,
    random_state: np.random.RandomState,
    sample_size: int | None = None,
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
) -> np.ndarray:
    """Initial centers, in centred coordinates (``mean`` subtracted), float64.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
    init : {"k-means++", "k-means||", "random"} or ndarray of shape (n_clusters, n_features)
        ``"k-means++"`` runs scikit-learn's greedy k-means++ on a seeded sample of
        ``sample_size`` rows (default ``max(100 * n_clusters, 10000)``);
        ``"k-means||"`` is the scalable k-means|| of Bahmani et al. over all rows,
        ``n_rounds`` passes oversampling ``oversampling_factor * n_clusters`` rows each;
        ``"random"`` picks ``n_clusters`` distinct rows of the sample.
    """
    if isinstance(init, np.ndarray):
        return np.asarray(init, dtype=np.float64) - mean
    if init == "k-means||":
        return _kmeans_parallel(X, n_clusters, mean, sample_weight, random_state, oversampling_factor, n_rounds)
    from sklearn.cluster import kmeans_plusplus

    size = sample_size or max(INIT_ROWS_PER_CLUSTER * n_clusters, MIN_INIT_SAMPLE)
    rng = np.random.default_rng(random_state.randint(2**31 - 1))
    rows, sample = sample_rows(X, size, rng)
    sample = sample.astype(np.float64) - mean
    sw = None if sample_weight is None else np.asarray(sample_weight[rows].compute(), dtype=np.float64)
    if init == "random":
        pick = random_state.choice(sample.shape[0], n_clusters, replace=False)
        return sample[pick]
    centers, _ = kmeans_plusplus(sample, n_clusters, sample_weight=sw, random_state=random_state)
    return centers


def _nearest_update(pair, X, C, mean, offset):
    """Update each row's (squared distance, id) of its nearest candidate with new candidates ``C``.

    The new candidates are numbered from ``offset``.
    """
    dist_old, near_old = pair
    lab, dist = assign_chunk(X, C, mean)
    better = dist < dist_old
    return np.where(better, dist, dist_old), np.where(better, lab + offset, near_old)


def _kmeans_parallel(X, k, mean, w, random_state, oversampling_factor, n_rounds):
    t0 = time.perf_counter()
    n = X.shape[0]
    ell = oversampling_factor * k
    blocks = row_blocks(X)
    wblocks = _weight_blocks(w, len(blocks))
    first = int(random_state.randint(n))
    cand = [np.asarray(X[first].compute(), dtype=np.float64) - mean]
    C = np.stack(cand)
    mu = np.asarray(mean, dtype=np.float64)
    # per block: (squared distance to the nearest candidate, its id)
    state = [
        dask.delayed(_nearest_update, pure=True)(
            (np.full(nb, np.inf, np.float32), np.zeros(nb, np.int64)), b, C.astype(np.float32), mu, 0
        )
        for b, nb in zip(blocks, X.chunks[0])
    ]
    state = list(dask.persist(*state))
    n_cand = 1
    for r in range(n_rounds):
        phi = dask.compute(*[dask.delayed(_phi, pure=True)(s, wb) for s, wb in zip(state, wblocks)])
        phi_total = float(np.sum(phi))
        if phi_total <= 0:
            break
        seed = random_state.randint(2**31 - 1, size=len(blocks))
        picks = dask.compute(*[
            dask.delayed(_oversample, pure=True)(s, b, wb, ell / phi_total, int(sd), mu)
            for s, b, wb, sd in zip(state, blocks, wblocks, seed)
        ])
        new = np.concatenate([p for p in picks if p.shape[0]]) if any(p.shape[0] for p in picks) else None
        if new is None:
            continue
        Cn = new.astype(np.float32)
        state = list(dask.persist(*[
            dask.delayed(_nearest_update, pure=True)(s, b, Cn, mu, n_cand) for s, b in zip(state, blocks)
        ]))
        cand.append(new.astype(np.float64))
        n_cand += new.shape[0]
    candidates = np.concatenate([c.reshape(-1, X.shape[1]) for c in cand])
    counts = np.sum(dask.compute(*[
        dask.delayed(_candidate_weights, pure=True)(s, wb, n_cand) for s, wb in zip(state, wblocks)
    ]), axis=0)
    centers = _reduce_candidates(candidates, counts, k, random_state)
    logger.info("k-means|| init: %d candidates -> %d centers in %.2f s", n_cand, k, time.perf_counter() - t0)
    return centers


def _phi(pair, w):
    d = pair[0].astype(np.float64)
    return float(d.sum() if w is None else np.dot(d, w))


def _oversample(pair, X, w, scale, seed, mean):
    d = pair[0].astype(np.float64) * (1.0 if w is None else np.asarray(w))
    rng = np.random.default_rng(seed)
    take = rng.random(d.shape[0]) < scale * d
    return np.asarray(X[take], dtype=np.float64) - mean


def _candidate_weights(pair, w, n_cand):
    near = pair[1]
    return np.bincount(near, weights=None if w is None else np.asarray(w), minlength=n_cand).astype(np.float64)


def _reduce_candidates(candidates: np.ndarray, weights: np.ndarray, k: int, random_state) -> np.ndarray:
    """Cluster the weighted k-means|| candidates down to k distinct centers, in memory."""
    from sklearn.cluster import KMeans as SkKMeans

    uniq, inverse = np.unique(candidates, axis=0, return_inverse=True)
    wu = np.bincount(inverse.ravel(), weights=weights, minlength=uniq.shape[0])
    keep = wu > 0
    uniq, wu = uniq[keep], wu[keep]
    if uniq.shape[0] <= k:
        if uniq.shape[0] < k:
            warnings.warn(
                f"k-means|| found {uniq.shape[0]} distinct candidates for n_clusters={k}; "
                "the data has fewer distinct rows than clusters.", ConvergenceWarning, stacklevel=3,
            )
        return uniq
    km = SkKMeans(k, init="k-means++", n_init=1, random_state=random_state).fit(uniq, sample_weight=wu)
    return km.cluster_centers_


@dataclass
class _FitInput:
    """What every k-means fit starts from: the checked data, weights and statistics."""

    X: da.Array
    was_numpy: bool
    w: da.Array | None
    mean: np.ndarray
    tol: float


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering of a dask array, one map-reduce pass per Lloyd iteration.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "k-means||", "random"} or ndarray of shape (n_clusters, n_features), \
            default="k-means++"
        ``"k-means++"``: scikit-learn's k-means++ on a seeded sample of
        ``init_sample_size`` rows (default ``max(100 * n_clusters, 10000)``);
        ``"k-means||"``: scalable k-means|| over every row (costs several passes).
    max_iter : int, default=300
    tol : float, default=1e-4
        Relative tolerance, scaled like scikit-learn's by the mean per-feature
        variance of X: iterations stop once the centers move (sum of squared
        shifts) by no more than that.
    random_state : int, RandomState instance or None, default=None
    engine : {"ivc", "dask-ml"}, default="ivc"
        ``"ivc"``: this project's fused Lloyd loop. ``"dask-ml"``: dask-ml's KMeans,
        with its known defects worked around (see :mod:`cluster_lib._compat`).
    persist : bool or "auto", default="auto"
        Keep X in the workers' memory between passes: always, never (stream it
        from its source on every pass), or when it takes under half their memory.
    init_sample_size : int, optional
    oversampling_factor : float, default=2.0
        k-means|| draws this many times ``n_clusters`` rows per round.
    init_max_iter : int, default=5
        Rounds of k-means||.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : dask array (numpy array for numpy input) of shape (n_samples,), int32
    inertia_ : float
        Sum of squared distances of the rows to their nearest center (weighted).
    n_iter_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import dask.array as da
    >>> X = da.random.RandomState(0).normal(size=(10_000, 16), chunks=2_500)
    >>> km = KMeans(n_clusters=4, random_state=0).fit(X)
    >>> km.cluster_centers_.shape
    (4, 16)
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "k-means||", "random"}), np.ndarray],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "engine": [StrOptions({"ivc", "dask-ml"})],
        "persist": ["boolean", StrOptions({"auto"})],
        "init_sample_size": [Interval(Integral, 1, None, closed="left"), None],
        "oversampling_factor": [Interval(Real, 0, None, closed="neither")],
        "init_max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
        engine: str = "ivc",
        persist: bool | str = "auto",
        init_sample_size: int | None = None,
        oversampling_factor: float = 2.0,
        init_max_iter: int = 5,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.engine = engine
        self.persist = persist
        self.init_sample_size = init_sample_size
        self.oversampling_factor = oversampling_factor
        self.init_max_iter = init_max_iter

    # -- fitting -----------------------------------------------------------
    def _prepare_fit(self, X: Any, sample_weight: Any) -> _FitInput:
        """Validate, persist if asked to, and take the mean and variance: one pass."""
        validate_params(self)
        X, was_numpy = as_dask_2d(X)
        n, d = X.shape
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} should be >= n_clusters={self.n_clusters}.")
        if isinstance(self.init, np.ndarray) and self.init.shape != (self.n_clusters, d):
            raise ValueError(
                f"The shape of the initial centers {self.init.shape} does not match the number of clusters "
                f"{self.n_clusters} and features {d}."
            )
        w = _weights_like(sample_weight, X)
        X, persisted = maybe_persist(X, self.persist)
        if w is not None and persisted:
            w = w.persist()
        mean, var = dask.compute(X.mean(axis=0, dtype=np.float64), X.var(axis=0, dtype=np.float64))
        return _FitInput(X, was_numpy, w, mean, float(np.mean(var) * self.tol))

    def _finish_fit(self, fin: _FitInput, centers: np.ndarray) -> None:
        """Final pass: labels and true inertia for ``centers`` (centred); sets the fitted attributes."""
        labels, inertia = _labels_and_inertia(fin.X, fin.w, centers, fin.mean)
        self.cluster_centers_ = (centers + fin.mean).astype(fin.X.dtype)
        self._mean = fin.mean
        self._centred = centers
        self.inertia_ = inertia
        self.labels_ = np.asarray(labels.compute()) if fin.was_numpy else labels
        self.n_features_in_ = fin.X.shape[1]

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute k-means clustering.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : dask array or array-like of shape (n_samples,), optional

        Returns
        -------
        self : KMeans
        """
        t0 = time.perf_counter()
        random_state = check_random_state(self.random_state)
        fin = self._prepare_fit(X, sample_weight)
        X, w, mean = fin.X, fin.w, fin.mean
        self.timings_ = {"prepare": time.perf_counter() - t0}
        t = time.perf_counter()
        if self.engine == "dask-ml":
            from cluster_lib._compat import fit_dask_ml_kmeans

            if w is not None:
                raise ValueError("engine='dask-ml' does not support sample_weight; use engine='ivc'.")
            centers = fit_dask_ml_kmeans(self, X, mean, random_state) - mean
        else:
            centers = kmeans_init(
                X, self.n_clusters, init=self.init, mean=mean, sample_weight=w, random_state=random_state,
                sample_size=self.init_sample_size, oversampling_factor=self.oversampling_factor,
                n_rounds=self.init_max_iter,
            )
            self.timings_["init"] = time.perf_counter() - t
            centers, self.n_iter_ = self._lloyd(X, w, centers, mean, fin.tol, random_state)
        t = time.perf_counter()
        self._finish_fit(fin, centers)
        self.timings_["final_pass"] = time.perf_counter() - t
        self.timings_["total"] = time.perf_counter() - t0
        return self

    def _lloyd(self, X, w, centers, mean, tol, random_state):
        blocks = row_blocks(X)
        wblocks = _weight_blocks(w, len(blocks))
        groups = blocks_by_worker(X)
        k = self.n_clusters
        n_far = min(k, 64)
        centers = np.asarray(centers, dtype=np.float64)
        self.iteration_seconds_ = []
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            t = time.perf_counter()
            stats = _lloyd_pass(blocks, wblocks, centers, mean, n_far, groups)
            new = centers.copy()
            nonempty = stats.counts > 0
            new[nonempty] = stats.sums[nonempty] / stats.counts[nonempty, None]
            empty = np.flatnonzero(~nonempty)
            if empty.size:
                new[empty] = _reseed(stats, empty.size, new[nonempty], random_state)
                logger.info("iteration %d: re-seeded %d empty clusters", n_iter, empty.size)
            shift = float(((new - centers) ** 2).sum())
            centers = new
            dt = time.perf_counter() - t
            self.iteration_seconds_.append(dt)
            logger.info("iteration %d: inertia %.6g, center shift %.3g (tol %.3g), %.3f s",
                        n_iter, stats.inertia, shift, tol, dt)
            if shift <= tol and not empty.size:
                break
        else:
            warnings.warn(
                f"KMeans did not converge in max_iter={self.max_iter} iterations; "
                "increase max_iter or tol.", ConvergenceWarning, stacklevel=3,
            )
        return centers, n_iter

    # -- using the fitted model --------------------------------------------
    def _check_fitted_input(self, X: Any) -> tuple[da.Array, bool]:
        return check_fitted_input(self, X, "cluster_centers_")

    def predict(self, X: Any) -> Any:
        """Index of the nearest center of every row (dask array for dask input)."""
        X, was_numpy = self._check_fitted_input(X)
        C = self._centred.astype(np.float32)
        mu = self._mean.astype(np.float64)
        labels = X.map_blocks(lambda b: assign_chunk(b, C, mu)[0], drop_axis=1, dtype=np.int32)
        return np.asarray(labels.compute()) if was_numpy else labels

    def transform(self, X: Any) -> Any:
        """Euclidean distance of every row to every center, shape (n_samples, n_clusters)."""
        X, was_numpy = self._check_fitted_input(X)
        C = self.cluster_centers_.astype(np.float64)
        out = X.map_blocks(_center_distances, C, chunks=(X.chunks[0], (C.shape[0],)), dtype=X.dtype)
        return np.asarray(out.compute()) if was_numpy else out

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) sum of squared distances of X to the nearest centers."""
        X, _ = self._check_fitted_input(X)
        w = _weights_like(sample_weight, X)
        _, inertia = _labels_and_inertia(X, w, self._centred, self._mean, keep_labels=False)
        return -inertia


def _center_distances(block: np.ndarray, C: np.ndarray) -> np.ndarray:
    from sklearn.metrics.pairwise import euclidean_distances

    return euclidean_distances(block, C).astype(block.dtype, copy=False)


def _reseed(stats: LloydStats, m: int, kept: np.ndarray, random_state) -> np.ndarray:
    """New centers for ``m`` empty clusters: the rows farthest from their centers.

    Rows equal to a kept center or to each other are skipped, so every center stays distinct.
    """
    out: list[np.ndarray] = []
    taken = [tuple(c) for c in kept.astype(np.float32)]
    seen = set(taken)
    for row in stats.far_rows:
        key = tuple(row.astype(np.float32))
        if key in seen:
            continue
        seen.add(key)
        out.append(row.astype(np.float64))
        if len(out) == m:
            break
    while len(out) < m:  # fewer distinct far rows than empty clusters: jitter a random kept center
        base = kept[random_state.randint(kept.shape[0])] if kept.shape[0] else np.zeros(stats.sums.shape[1])
        out.append(base + 1e-6 * random_state.standard_normal(base.shape))
    return np.stack(out)
