"""DBSCAN for millions of rows: exact DBSCAN on a sample, then one labelling pass.

scikit-learn's DBSCAN keeps every point's neighbour list, which is O(N^2) memory
in the worst case and far too slow at hundreds of thousands of rows. This
estimator follows the idea of DBSCAN++ (Jang and Jiang, 2019): the density
structure is found on a seeded sample held in memory, and every row is then
labelled by the nearest core point, in parallel, chunk by chunk:

1. **Sample.** ``sample_size`` distinct rows are drawn (all rows when
   ``n_samples <= sample_size``), and scikit-learn's exact DBSCAN runs on them
   with ``min_samples`` scaled to the sampling fraction ``f = m / n``::

       min_samples_ = round(1 + (min_samples - 1) * f),  at least min(2, min_samples)

   A row's neighbourhood counts the row itself plus its other neighbours, and
   only a fraction ``f`` of those is sampled, so the threshold keeps its meaning
   on the full data. It is never lowered below 2 (a sample row alone would
   always be "dense"), so when ``f`` is so small that the scaled value is below 2,
   the effective full-data threshold is higher than asked: ``1 + 1 / f``. That
   is logged; a larger ``sample_size`` restores it. The radius is not scaled:
   the sample's rows are further apart than the data's by about ``f ** (-1 / d)``
   in ``d`` dimensions, which is negligible for descriptors (d >= 50) but can
   split clusters of low-dimensional data at a fixed ``eps``; ``eps="auto"`` is
   measured on the sample and does not have that problem.
2. **eps="auto".** On the distinct sample rows, the distance of each row to its
   ``min_samples_``-th nearest row (itself included, the DBSCAN core test) is
   sorted, and ``eps`` is the knee of that curve drawn on a log scale: the point
   farthest below the chord from its first to its last point, with both axes
   scaled to [0, 1] (Kneedle), values below the curve's 1st percentile raised
   to it. The log scale keeps a few far outliers from flattening the curve, and
   duplicates are dropped because a row's copies would make its k-distance zero.
3. **Core points for labelling.** The sample's core points label the other rows.
   When there are more than ``max_core_points``, each cluster's core points are
   thinned by farthest-first traversal (one seed per cluster, then always the
   core point farthest from the kept ones of its cluster), which leaves every
   dropped core point within ``cover_radius_`` of a kept one of its cluster.
4. **Labelling pass.** Per chunk, every row gets its nearest kept core point and
   the squared distance to it from the float32 GEMM kernel of
   :func:`cluster_lib._lloyd.assign_chunk`; the row takes that point's cluster
   if within ``label_radius_``, else -1. Rows of the sample keep the label the
   exact DBSCAN gave them.

Exactness: when the sample is the whole data (``n_samples <= sample_size``) and
the core points are not thinned, ``labels_`` equal scikit-learn's DBSCAN on the
same data exactly, numbering included (every row is in the sample and keeps its
label); rows whose float32 distance lies within rounding error of ``eps`` are
checked again in float64, so :meth:`predict` decides noise exactly as well.
:meth:`predict` gives a border row its *nearest* core point's cluster, while
scikit-learn gives it the first cluster to reach it, which depends on row order:
the two differ only for border rows within ``eps`` of core points of two clusters.

When the core points are thinned, whether a row is within ``eps`` of *some* core
point can no longer be decided exactly: a row within ``eps`` of a dropped core
point is within ``eps + cover_radius_`` of a kept one, but in high dimensions
``cover_radius_`` is about ``eps`` itself, so that bound would label most noise.
``label_radius_`` is therefore calibrated: it is the radius in
``[eps, eps + cover_radius_]`` that best reproduces, on ``CALIBRATION_ROWS`` rows
drawn with the sample but held out of it, which rows are within ``eps`` of *some*
core point, from their distance to the nearest kept one. (Held-out rows, because
the sample's own rows are biased: farthest-first covers the dropped core points
better than it covers new rows. When the sample is the whole data every row keeps
its label and the radius only serves :meth:`predict`; it is then calibrated on
the sample's rows that are not kept.)

Cosine: rows are L2-normalised (:func:`cluster_lib.l2_normalize`), and for unit
rows ``||a - b||^2 = 2 (1 - cos(a, b))``, so a cosine distance ``eps`` is the
euclidean radius ``sqrt(2 * eps)`` on the unit sphere. ``eps_`` holds that radius,
``eps_input_`` the cosine distance.
"""

from __future__ import annotations

import logging
import time
import warnings
from numbers import Integral, Real
from typing import Any

import dask
import dask.array as da
import numba
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_random_state

from cluster_lib._compat import Interval, StrOptions, validate_params
from cluster_lib._dask_utils import (
    as_dask_2d,
    check_fitted_input,
    maybe_persist,
    persist_with,
    row_blocks,
    sample_rows,
    sum_values,
    tree_reduce,
)
from cluster_lib._lloyd import assign_chunk
from cluster_lib._preprocess import l2_normalize

__all__ = ["DBSCAN", "kdistance_knee", "scaled_min_samples"]

logger = logging.getLogger(__name__)

#: Rows outside the sample, drawn with it, on which the thinned labelling radius is calibrated.
CALIBRATION_ROWS = 4000
#: Rows of the sample whose neighbour counts estimate the memory of the sample's DBSCAN.
MEMORY_PROBE_ROWS = 256
#: Warn when scikit-learn's neighbour lists for the sample would take more than this.
NEIGHBOURHOOD_BYTES_WARN = 2 * 2**30


def scaled_min_samples(min_samples: int, fraction: float) -> int:
    """``min_samples`` for a sample holding ``fraction`` of the rows.

    A row is core when its neighbourhood, itself included, holds ``min_samples``
    rows; the row itself is in the sample and only ``fraction`` of the others are,
    so the sample's threshold is ``1 + (min_samples - 1) * fraction``, rounded, and
    at least ``min(2, min_samples)``.

    Examples
    --------
    >>> scaled_min_samples(10, 1.0), scaled_min_samples(10, 0.5), scaled_min_samples(10, 0.01)
    (10, 6, 2)
    """
    value = int(np.floor(1.0 + (min_samples - 1) * fraction + 0.5))
    return max(value, min(2, min_samples))


def kdistance_knee(kdist: np.ndarray) -> tuple[float, float]:
    """The knee of a k-distance curve, on a log scale.

    Parameters
    ----------
    kdist : ndarray of shape (m,)
        Every row's distance to its k-th nearest row.

    Returns
    -------
    eps : float
        The k-distance at the knee (the largest distance if the curve is flat;
        1.0 if every distance is zero, since then any positive radius is the same).
    quantile : float
        Fraction of the rows whose k-distance lies below the knee.
    """
    y = np.sort(np.asarray(kdist, dtype=np.float64))
    positive = y[y > 0]
    if positive.size == 0:
        return 1.0, 1.0
    y = np.maximum(y, np.quantile(positive, 0.01))
    ly = np.log(y)
    span = ly[-1] - ly[0]
    if y.size < 3 or span <= 0:
        return float(y[-1]), 1.0
    x = np.linspace(0.0, 1.0, y.size)
    i = int(np.argmax(x - (ly - ly[0]) / span))
    return float(y[i]), float(x[i])


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _farthest_first(P, starts, budget):  # pragma: no cover - compiled
    """Farthest-first traversal of each cluster's points, sharing one budget.

    ``P`` (m, d) holds the points sorted by cluster, cluster c in rows
    ``starts[c]:starts[c + 1]``. Returns the kept rows (one seed per cluster, then
    always the point farthest from the kept points of its own cluster) and the
    largest remaining distance from a point to a kept point of its cluster.
    """
    m, d = P.shape
    n_clusters = starts.shape[0] - 1
    dist = np.full(m, np.inf)
    owner = np.empty(m, np.int64)
    kept = np.empty(max(budget, n_clusters), np.int64)
    nk = 0
    for c in range(n_clusters):
        owner[starts[c]:starts[c + 1]] = c
    pick = -1
    c = 0
    while True:
        if nk < n_clusters:
            pick = starts[nk]
            c = nk
        elif nk < budget:
            pick = int(np.argmax(dist))
            if dist[pick] <= 0.0:
                break
            c = owner[pick]
        else:
            break
        kept[nk] = pick
        nk += 1
        for i in range(starts[c], starts[c + 1]):
            s = 0.0
            for t in range(d):
                diff = P[i, t] - P[pick, t]
                s += diff * diff
            dist[i] = min(dist[i], s)
    return kept[:nk], np.sqrt(dist.max()) if m else 0.0


def _thin_core_points(P: np.ndarray, clusters: np.ndarray, budget: int) -> tuple[np.ndarray, float]:
    """Indices into ``P`` of at most ``budget`` core points (one per cluster at least), and the cover radius."""
    order = np.argsort(clusters, kind="stable")
    counts = np.bincount(clusters, minlength=int(clusters.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    kept, radius = _farthest_first(np.ascontiguousarray(P[order], dtype=np.float64), starts, budget)
    return np.sort(order[kept]), float(radius)


def _calibrate_radius(dist: np.ndarray, clustered: np.ndarray, low: float, high: float) -> float:
    """The radius in [low, high] that best separates ``clustered`` rows from noise rows by ``dist``.

    Rows with ``dist`` within the radius count as clustered; the radius minimises
    the misclassified rows, in the middle of the best gap.
    """
    if dist.size == 0:
        return high
    order = np.argsort(dist, kind="stable")
    d, t = dist[order], clustered[order]
    # errors when the first i rows (i = 0..m) are labelled: noise among them + clustered after them
    noise_in = np.concatenate([[0], np.cumsum(~t)])
    clustered_in = np.concatenate([[0], np.cumsum(t)])
    errors = noise_in + (clustered_in[-1] - clustered_in)
    i = int(np.argmin(errors))
    if i == 0:
        radius = low
    elif i == d.size:
        radius = high
    else:
        radius = 0.5 * (d[i - 1] + d[i])
    return float(min(max(radius, low), high))


def _nearest_distance(A: np.ndarray, P: np.ndarray, mean: np.ndarray, step: int = 256) -> np.ndarray:
    """Euclidean distance (float64) from every row of ``A`` to its nearest row of ``P``, which is not empty.

    Goes through ``A`` ``step`` rows at a time, so that the (len(P), step) product stays small.
    """
    C = (np.asarray(P, dtype=np.float64) - mean).astype(np.float32)
    mu = mean.astype(np.float32)
    out = np.empty(A.shape[0], np.float64)
    for s in range(0, A.shape[0], step):
        out[s:s + step] = assign_chunk(A[s:s + step], C, mu)[1]
    return np.sqrt(np.maximum(out, 0.0))


def _label_block(X: np.ndarray, C: np.ndarray, mu: np.ndarray, C64: np.ndarray, comp_labels: np.ndarray,
                 radius2: float, rtol: float, own_rows: np.ndarray, own_labels: np.ndarray
                 ) -> tuple[np.ndarray, int]:
    """Labels of one chunk's rows: the cluster of the nearest component within the radius, else -1.

    Assumes ``C`` (centred by ``mu``, float32) and ``C64`` (not centred, float64)
    hold the same components. Rows whose float32 squared distance lies within
    ``rtol`` (relative) of ``radius2`` are decided again in float64; ``rtol=0``
    skips that. Rows ``own_rows`` of the chunk get ``own_labels`` whatever their
    distance. Returns the labels (int32) and the number of noise rows.
    """
    from scipy.spatial.distance import cdist

    out = np.full(X.shape[0], -1, np.int32)
    if C.shape[0] and X.shape[0]:
        near, dist = assign_chunk(X, C, mu)
        if rtol > 0:
            # |error| of x2 - 2 x.c + c2 in float32 is below rtol * (x2 + c2), and
            # x2 <= 2 dist + 2 c2 for the centred row x and component c
            c2max = float(np.max(np.einsum("ij,ij->i", C, C)))
            band = rtol * (2.0 * dist + 2.0 * c2max + radius2)
            unsure = np.flatnonzero(np.abs(dist - radius2) <= band)
            if unsure.size:
                D = cdist(np.asarray(X[unsure], dtype=np.float64), C64, "sqeuclidean")
                near[unsure] = np.argmin(D, axis=1)
                dist = dist.astype(np.float64)
                dist[unsure] = D[np.arange(unsure.size), near[unsure]]
        hit = dist <= radius2
        out[hit] = comp_labels[near[hit]]
    out[own_rows] = own_labels
    return out, int(np.count_nonzero(out == -1))


class DBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN of a dask array: exact DBSCAN on a sample, then every row labelled by its nearest core point.

    See the module docstring of :mod:`cluster_lib._dbscan` for the method, the
    scaling of ``min_samples``, the ``eps="auto"`` rule and when the result equals
    scikit-learn's.

    Parameters
    ----------
    eps : float or "auto", default=0.5
        Neighbourhood radius, in the units of ``metric`` (cosine distance
        ``1 - cos`` for ``"cosine"``). ``"auto"`` takes the knee of the sample's
        k-distance curve.
    min_samples : int, default=5
        Rows (the row itself included) within ``eps`` that make a row a core point,
        on the full data; scaled to the sample (attribute ``min_samples_``).
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` clusters the L2-normalised rows with a euclidean radius of
        ``sqrt(2 * eps)``.
    sample_size : int, default=20000
        Rows the exact DBSCAN runs on, in memory. scikit-learn keeps every sample
        row's neighbour list, so memory grows with ``sample_size`` times the mean
        neighbourhood size (a warning says when it would exceed 2 GiB). When the
        data has more rows, up to ``CALIBRATION_ROWS`` (4000) more are drawn and
        held out of the sample, to calibrate the labelling radius.
    max_core_points : int, default=1000
        At most this many core points label the rows (but at least one per cluster).
        The labelling pass costs about ``max_core_points / 100`` k-means passes
        with 100 clusters.
    random_state : int, RandomState instance or None, default=None
        Seeds the sample.
    persist : bool or "auto", default="auto"
        Keep X in the workers' memory for the sampling and labelling passes:
        always, never, or when it takes under half their memory.

    Attributes
    ----------
    labels_ : dask array (numpy array for numpy input) of shape (n_samples,), int32
        Cluster of every row; -1 for noise.
    core_sample_indices_ : ndarray of shape (n_core_samples,), int64
        Rows of X (not of the sample) that are core points of the sample's
        DBSCAN, sorted. Equal to scikit-learn's when the sample is the whole data.
    components_ : ndarray of shape (n_components, n_features)
        The core points that label the rows (all of the sample's, or the ones kept
        by thinning); L2-normalised rows for ``metric="cosine"``.
    component_indices_ : ndarray of shape (n_components,), int64
        Rows of X of ``components_``.
    component_labels_ : ndarray of shape (n_components,), int32
        Cluster of each of ``components_``.
    eps_ : float
        The euclidean radius used: ``eps``, its knee estimate, or for cosine the
        radius ``sqrt(2 * eps)`` on the unit sphere.
    eps_input_ : float
        The same radius in the units of ``metric`` (equal to ``eps`` unless "auto").
    min_samples_ : int
        ``min_samples`` scaled to the sample, as used by its DBSCAN.
    label_radius_ : float
        The euclidean radius of the labelling pass: ``eps_``, or calibrated
        within ``[eps_, eps_ + cover_radius_]`` when the core points are thinned.
    cover_radius_ : float
        Largest distance from a dropped core point to a kept one of its cluster
        (0 when none is dropped).
    n_clusters_ : int
    noise_fraction_ : float
        Fraction of the rows labelled -1.
    sample_indices_ : ndarray of shape (n_sample,), int64
        Rows of X in the sample, sorted.
    sample_labels_ : ndarray of shape (n_sample,), int32
        Labels the exact DBSCAN gave the sample rows.
    n_features_in_ : int
    timings_ : dict of str to float
        Seconds per step.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(600, centers=3, cluster_std=0.4, random_state=0)
    >>> db = DBSCAN(eps=0.5, min_samples=5).fit(X)
    >>> db.n_clusters_
    3
    """

    _parameter_constraints: dict = {
        "eps": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"euclidean", "cosine"})],
        "sample_size": [Interval(Integral, 1, None, closed="left")],
        "max_core_points": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "persist": ["boolean", StrOptions({"auto"})],
    }

    def __init__(
        self,
        eps: float | str = 0.5,
        *,
        min_samples: int = 5,
        metric: str = "euclidean",
        sample_size: int = 20000,
        max_core_points: int = 1000,
        random_state: Any = None,
        persist: bool | str = "auto",
    ) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.sample_size = sample_size
        self.max_core_points = max_core_points
        self.random_state = random_state
        self.persist = persist

    # -- fitting -----------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> DBSCAN:
        """Cluster the rows of ``X``.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : DBSCAN
        """
        t0 = time.perf_counter()
        validate_params(self)
        random_state = check_random_state(self.random_state)
        X, was_numpy = as_dask_2d(X)
        n, d = X.shape
        if n < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
        if self.metric == "cosine":
            X = l2_normalize(X)
        X, _ = maybe_persist(X, self.persist)
        self.timings_ = {}

        t = time.perf_counter()
        rng = np.random.default_rng(random_state.randint(2**31 - 1))
        n_cal = min(CALIBRATION_ROWS, n - self.sample_size) if n > self.sample_size else 0
        rows, S = sample_rows(X, self.sample_size + n_cal, rng)
        if n_cal:  # hold some drawn rows out of the sample, to calibrate the labelling radius
            held = np.zeros(rows.size, bool)
            held[rng.choice(rows.size, n_cal, replace=False)] = True
            rows, S, S_cal = rows[~held], S[~held], S[held]
        else:
            S_cal = S[:0]
        m = S.shape[0]
        self.timings_["sample"] = time.perf_counter() - t

        t = time.perf_counter()
        self.min_samples_ = scaled_min_samples(self.min_samples, m / n)
        if m < n and self.min_samples_ == 2 and 1 + (self.min_samples - 1) * m / n < 1.5:
            logger.info("sample of %d rows in %d: min_samples=%d scaled to 2, which means about %.0f on the "
                        "full data; raise sample_size to keep min_samples", m, n, self.min_samples,
                        1 + n / m)
        self._set_eps(S)
        self.timings_["eps"] = time.perf_counter() - t

        t = time.perf_counter()
        sample_labels, core = self._sample_dbscan(S, rng)
        self.timings_["sample_dbscan"] = time.perf_counter() - t

        t = time.perf_counter()
        mean = S.mean(axis=0, dtype=np.float64)
        comp = self._choose_components(S, sample_labels, core, mean, S_cal)
        self.timings_["components"] = time.perf_counter() - t

        t = time.perf_counter()
        self.sample_indices_ = rows.astype(np.int64)
        self.sample_labels_ = sample_labels
        self.core_sample_indices_ = rows[core].astype(np.int64)
        self.component_indices_ = rows[comp].astype(np.int64)
        self.components_ = S[comp]
        self.component_labels_ = sample_labels[comp]
        self.n_features_in_ = d
        self._mean = mean
        labels, n_noise = self._label_all(X, rows, sample_labels, was_numpy)
        self.labels_ = labels
        self.noise_fraction_ = n_noise / n if n else 0.0
        self.timings_["label"] = time.perf_counter() - t
        self.timings_["total"] = time.perf_counter() - t0
        logger.info("DBSCAN: %d clusters, noise fraction %.4f (%d rows, sample %d, %d core points, "
                    "%d labelling); labelling pass %.3f s, total %.2f s",
                    self.n_clusters_, self.noise_fraction_, n, m, core.size, comp.size,
                    self.timings_["label"], self.timings_["total"])
        return self

    def _set_eps(self, S: np.ndarray) -> None:
        """Set ``eps_`` and ``eps_input_`` (the knee of the sample's k-distances for "auto")."""
        if self.eps != "auto":
            self.eps_input_ = float(self.eps)
            self.eps_ = float(np.sqrt(2.0 * self.eps)) if self.metric == "cosine" else float(self.eps)
            return
        from sklearn.neighbors import NearestNeighbors

        U = np.unique(S, axis=0)
        k = min(max(2, self.min_samples_), U.shape[0])
        if k < 2:
            eps, q = 1.0, 1.0
        else:
            dist, _ = NearestNeighbors(n_neighbors=k).fit(U).kneighbors(U)
            eps, q = kdistance_knee(dist[:, -1])
        self.eps_ = eps
        self.eps_input_ = eps * eps / 2.0 if self.metric == "cosine" else eps
        logger.info("eps='auto': knee of the %d-distance curve of %d distinct sample rows at its %.3f quantile: "
                    "eps_=%.6g (%s eps %.6g)", k, U.shape[0], q, eps, self.metric, self.eps_input_)

    def _sample_dbscan(self, S: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """scikit-learn's exact DBSCAN on the sample: its labels (int32) and core rows."""
        from sklearn.cluster import DBSCAN as SkDBSCAN

        m = S.shape[0]
        probe = S[rng.choice(m, size=min(m, MEMORY_PROBE_ROWS), replace=False)].astype(np.float64)
        S64 = S.astype(np.float64, copy=False)
        d2 = (np.einsum("ij,ij->i", probe, probe)[:, None] - 2.0 * probe @ S64.T
              + np.einsum("ij,ij->i", S64, S64)[None, :])
        est = float(np.mean(np.sum(d2 <= self.eps_ ** 2, axis=1))) * m * 8
        if est > NEIGHBOURHOOD_BYTES_WARN:
            warnings.warn(
                f"eps={self.eps_input_:.6g} puts about {est / m / 8:.0f} of the {m} sample rows in each "
                f"neighbourhood: scikit-learn's DBSCAN on the sample will hold about {est / 2**30:.1f} GiB of "
                "neighbour lists; lower sample_size or eps.", UserWarning, stacklevel=3,
            )
        db = SkDBSCAN(eps=self.eps_, min_samples=self.min_samples_).fit(S)
        labels = db.labels_.astype(np.int32)
        self.n_clusters_ = int(labels.max()) + 1 if labels.size else 0
        return labels, np.asarray(db.core_sample_indices_, dtype=np.int64)

    def _choose_components(self, S: np.ndarray, labels: np.ndarray, core: np.ndarray, mean: np.ndarray,
                           S_cal: np.ndarray) -> np.ndarray:
        """Rows of the sample that label the data; sets ``cover_radius_`` and ``label_radius_``.

        ``S_cal`` holds rows drawn outside the sample (none when the sample is the
        whole data), on which the labelling radius of thinned core points is calibrated.
        """
        self.cover_radius_ = 0.0
        self.label_radius_ = self.eps_
        self._rtol = 2.0 * S.shape[1] * float(np.finfo(np.float32).eps)
        if core.size <= self.max_core_points:
            return core
        if self.n_clusters_ > self.max_core_points:
            warnings.warn(
                f"DBSCAN found {self.n_clusters_} clusters, more than max_core_points={self.max_core_points}; "
                "labelling with one core point per cluster.", UserWarning, stacklevel=3,
            )
        kept, radius = _thin_core_points(S[core], labels[core], self.max_core_points)
        comp = core[kept]
        self.cover_radius_ = radius
        if S_cal.shape[0]:
            # Rows outside the sample, as the labelling pass will see them: clustered when
            # within eps of any core point, which the kept ones should reproduce.
            cal = S_cal
            clustered = _nearest_distance(cal, S[core], mean) <= self.eps_
            source = "held-out rows"
        else:
            # The sample is the whole data and every row keeps its label; the radius only
            # serves predict. Its non-component rows are the best stand-in for new rows,
            # though farthest-first covers dropped core points better than new rows.
            others = np.setdiff1d(np.arange(S.shape[0]), comp)
            cal, clustered = S[others], labels[others] != -1
            source = "sample rows"
        dist = _nearest_distance(cal, S[comp], mean)
        self.label_radius_ = _calibrate_radius(dist, clustered, self.eps_, self.eps_ + radius)
        self._rtol = 0.0  # an approximate radius gains nothing from an exact float64 check
        logger.info("thinned %d core points to %d (cover radius %.4g = %.2f eps_); labelling radius %.4g "
                    "= %.3f eps_, calibrated on %d %s", core.size, comp.size, radius, radius / self.eps_,
                    self.label_radius_, self.label_radius_ / self.eps_, cal.shape[0], source)
        return comp

    def _label_all(self, X: da.Array, rows: np.ndarray, sample_labels: np.ndarray,
                   was_numpy: bool) -> tuple[Any, int]:
        """Label every row in one pass; sample rows keep their labels. Returns the labels and the noise count."""
        blocks = row_blocks(X)
        bounds = np.concatenate([[0], np.cumsum(X.chunks[0])])
        args = self._kernel_args(lazy=True)
        parts = []
        for b, lo, hi in zip(blocks, bounds[:-1], bounds[1:]):
            s, e = np.searchsorted(rows, [lo, hi])
            parts.append(dask.delayed(_label_block, pure=True, nout=2)(
                b, *args, rows[s:e] - lo, sample_labels[s:e]))
        labels = da.concatenate([da.from_delayed(p[0], shape=(nb,), dtype=np.int32)
                                 for p, nb in zip(parts, X.chunks[0])])
        noise = tree_reduce([p[1] for p in parts], sum_values)
        if was_numpy:
            labels, n_noise = dask.compute(labels, noise)
            return np.asarray(labels), int(n_noise)
        labels, (n_noise,) = persist_with(labels, noise)
        return labels, int(n_noise)

    def _kernel_args(self, lazy: bool) -> tuple:
        """The arguments of :func:`_label_block` after the chunk; the components as delayed objects if ``lazy``."""
        C64 = self.components_.astype(np.float64)
        C = (C64 - self._mean).astype(np.float32)
        if lazy:  # one copy in the graph, not one per task
            C, C64 = dask.delayed(C, pure=True), dask.delayed(C64, pure=True)
        return (
            C,
            self._mean.astype(np.float32),
            C64,
            self.component_labels_,
            float(self.label_radius_) ** 2,
            self._rtol,
        )

    # -- using the fitted model --------------------------------------------
    def predict(self, X: Any) -> Any:
        """Label new rows: the cluster of the nearest component within ``label_radius_``, else -1.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : dask array (numpy array for numpy input) of shape (n_samples,), int32
        """
        X, was_numpy = check_fitted_input(self, X, "components_")
        if self.metric == "cosine":
            X = l2_normalize(X)
        args = self._kernel_args(lazy=False)
        no_rows, no_labels = np.empty(0, np.int64), np.empty(0, np.int32)
        labels = X.map_blocks(lambda b: _label_block(b, *args, no_rows, no_labels)[0], drop_axis=1, dtype=np.int32)
        return np.asarray(labels.compute()) if was_numpy else labels

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Cluster ``X`` and return ``labels_``.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        labels : dask array (numpy array for numpy input) of shape (n_samples,), int32
        """
        return self.fit(X).labels_
