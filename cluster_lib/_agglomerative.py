"""Agglomerative clustering whose memory does not grow with the square of the rows.

scikit-learn's unstructured agglomerative clustering builds the condensed matrix of
all pairwise distances, ``n (n - 1) / 2`` doubles (10 GB at 50k rows).  Here the
rows are first summarised by ``n_micro`` micro-clusters found by the distributed
:class:`cluster_lib.KMeans` (which never gathers rows), and the exact linkage then
runs in memory on the ``m <= n_micro`` non-empty micro-centroids, each weighted by
its number of rows:

* ``"ward"``: the merge cost of clusters A and B is
  ``|A| |B| / (|A| + |B|) * ||c_A - c_B||^2``, the exact Ward criterion when every
  row is replaced by its micro-centroid (Lance-Williams, initial sizes = row counts);
* ``"average"``: UPGMA from the centroid distances, merges averaged by rows;
* ``"complete"`` and ``"single"``: on the centroid distances.

The linkage is a nearest-neighbour chain over an ``m x m`` float64 matrix
(``8 m^2`` bytes: 8 MB at the default ``n_micro=1000``), ``O(m^2)`` time.  When
``n_micro >= n_samples`` every row is its own micro-cluster and the result is the
exact agglomerative clustering of the rows, equal to scikit-learn's.
"""

from __future__ import annotations

import logging
import time
import warnings
from numbers import Integral
from typing import Any

import dask.array as da
import numba
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning

from cluster_lib._compat import Interval, StrOptions, validate_params
from cluster_lib._dask_utils import as_dask_2d, check_fitted_input
from cluster_lib._kmeans import KMeans

__all__ = ["AgglomerativeClustering", "linkage_matrix", "weighted_linkage"]

logger = logging.getLogger(__name__)

_METHODS = {"ward": 0, "average": 1, "complete": 2, "single": 3}


# -- stage 2: exact weighted linkage on the micro-centroids, in memory ---------
@numba.njit(cache=True, nogil=True)
def _initial_distances(C, w, ward, out):  # pragma: no cover - compiled
    """Distances between the weighted points, in place of an m x m buffer (no temporaries).

    From the coordinate differences (no cancellation, like scipy's ``pdist``).  For
    ward, squared heights ``2 w_i w_j / (w_i + w_j) ||c_i - c_j||^2``; otherwise
    euclidean distances.
    """
    m, d = C.shape
    for i in range(m):
        out[i, i] = 0.0
        for j in range(i + 1, m):
            s = 0.0
            for t in range(d):
                diff = C[i, t] - C[j, t]
                s += diff * diff
            if ward:
                s *= 2.0 * w[i] * w[j] / (w[i] + w[j])
            else:
                s = np.sqrt(s)
            out[i, j] = s
            out[j, i] = s


@numba.njit(cache=True, nogil=True)
def _nn_chain(D, size, method, pairs, heights):  # pragma: no cover - compiled
    """Nearest-neighbour-chain agglomeration with Lance-Williams updates, in place on ``D``.

    Follows scipy's ``nn_chain`` step for step (same scan order, same tie rules,
    merged cluster kept in the larger slot) so that exact mode reproduces
    scipy's and scikit-learn's trees.  For ward, ``D`` holds squared heights.
    Writes the merges in the order found (not sorted): slots ``pairs[k]`` and height.
    Returns False if a row of ``D`` had no finite minimum (NaN input).
    """
    m = D.shape[0]
    size = size.copy()
    active = np.ones(m, np.bool_)
    chain = np.empty(m, np.int64)
    n_chain = 0
    for k in range(m - 1):
        if n_chain == 0:
            for i in range(m):
                if active[i]:
                    chain[0] = i
                    break
            n_chain = 1
        while True:
            x = chain[n_chain - 1]
            if n_chain > 1:
                y = chain[n_chain - 2]
                best = D[x, y]
            else:
                y = -1
                best = np.inf
            for i in range(m):
                if active[i] and i != x and D[x, i] < best:
                    best = D[x, i]
                    y = i
            if y < 0:
                return False
            if n_chain > 1 and y == chain[n_chain - 2]:
                break
            chain[n_chain] = y
            n_chain += 1
        n_chain -= 2
        if x > y:
            x, y = y, x
        nx = size[x]
        ny = size[y]
        pairs[k, 0] = x
        pairs[k, 1] = y
        heights[k] = best
        active[x] = False
        size[y] = nx + ny
        for i in range(m):
            if not active[i] or i == y:
                continue
            dxi = D[x, i]
            dyi = D[y, i]
            if method == 0:  # ward, on squared heights
                ni = size[i]
                v = ((ni + nx) * dxi + (ni + ny) * dyi - ni * best) / (ni + nx + ny)
                v = v if v > 0.0 else 0.0
            elif method == 1:  # average, weighted by rows
                v = (nx * dxi + ny * dyi) / (nx + ny)
            elif method == 2:
                v = dxi if dxi > dyi else dyi
            else:
                v = dxi if dxi < dyi else dyi
            D[i, y] = v
            D[y, i] = v
    return True


@numba.njit(cache=True, nogil=True)
def _relabel(pairs, m):  # pragma: no cover - compiled
    """Slot pairs (in height order) -> node ids: leaves 0..m-1, merge k creates node m + k.

    The same union-find labelling as scipy's ``label``: the smaller id comes first.
    """
    parent = np.arange(2 * m - 1)
    children = np.empty((m - 1, 2), np.int64)
    for k in range(m - 1):
        a = pairs[k, 0]
        while parent[a] != a:
            a = parent[a]
        b = pairs[k, 1]
        while parent[b] != b:
            b = parent[b]
        # path compression: point every visited node straight at the new node
        for start in (pairs[k, 0], pairs[k, 1]):
            node = start
            while parent[node] != node:
                nxt = parent[node]
                parent[node] = m + k
                node = nxt
        parent[a] = m + k
        parent[b] = m + k
        children[k, 0] = min(a, b)
        children[k, 1] = max(a, b)
    return children


def weighted_linkage(
    centers: Any, sizes: Any = None, linkage: str = "ward"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact agglomerative tree of weighted points, in scikit-learn's ``children_`` format.

    Parameters
    ----------
    centers : array-like of shape (m, n_features)
        The points (micro-centroids), m >= 1, finite.
    sizes : array-like of shape (m,), optional
        Rows each point stands for (positive); default 1 each, which gives
        scipy's and scikit-learn's unweighted linkage of ``centers``.
    linkage : {"ward", "average", "complete", "single"}, default="ward"

    Returns
    -------
    children : ndarray of shape (m - 1, 2), int64
        Merge ``k`` joins nodes ``children[k]`` into node ``m + k``; ids below m are
        the points.  Merges are sorted by height (stable).
    distances : ndarray of shape (m - 1,), float64
        Merge heights in scikit-learn's (scipy's) units: for ward
        ``sqrt(2 |A| |B| / (|A| + |B|)) * ||c_A - c_B||``, otherwise euclidean
        distances (size-weighted averages of them for average linkage).
    counts : ndarray of shape (m - 1,), float64
        Sum of ``sizes`` under each node.

    Examples
    --------
    >>> children, distances, counts = weighted_linkage([[0.0], [1.0], [5.0]], [1, 3, 1], "ward")
    >>> children.tolist(), counts.tolist()
    ([[0, 1], [2, 3]], [4.0, 5.0])
    """
    if linkage not in _METHODS:
        raise ValueError(f"linkage={linkage!r} should be one of {sorted(_METHODS)}.")
    C = np.asarray(centers, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] < 1:
        raise ValueError(f"centers should have shape (m, n_features) with m >= 1, got {C.shape}.")
    if not np.isfinite(C).all():
        raise ValueError("centers contain NaN or infinity.")
    w = np.ones(C.shape[0]) if sizes is None else np.asarray(sizes, dtype=np.float64).ravel()
    if w.shape != (C.shape[0],):
        raise ValueError(f"sizes.shape == {w.shape}, expected ({C.shape[0]},).")
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise ValueError("sizes should be positive and finite.")
    return _weighted_linkage(C, w, linkage)


def _weighted_linkage(C: np.ndarray, w: np.ndarray, linkage: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`weighted_linkage` on checked input: C float64 (m, d), w float64 (m,) > 0."""
    m = C.shape[0]
    D = np.empty((m, m), np.float64)
    _initial_distances(np.ascontiguousarray(C), w, linkage == "ward", D)
    pairs = np.empty((max(m - 1, 0), 2), np.int64)
    heights = np.empty(max(m - 1, 0), np.float64)
    if not _nn_chain(D, w, _METHODS[linkage], pairs, heights):
        raise ValueError("the distances between the centers are not finite.")
    del D
    order = np.argsort(heights, kind="mergesort")
    pairs, heights = pairs[order], heights[order]
    if linkage == "ward":
        heights = np.sqrt(heights)
    children = _relabel(pairs, m) if m > 1 else np.empty((0, 2), np.int64)
    node_size = np.concatenate([w, np.empty(max(m - 1, 0))])
    for k in range(m - 1):
        node_size[m + k] = node_size[children[k, 0]] + node_size[children[k, 1]]
    return children, heights, node_size[m:]


def _cut(children: np.ndarray, sizes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Leaf labels when the tree is cut into ``n_clusters`` (the last merges undone).

    Clusters are numbered by decreasing rows (``sizes`` summed), ties by their
    smallest leaf.
    """
    m = sizes.shape[0]
    node = np.arange(2 * m - 1)
    # top-down over the merges that stay: each node passes its root to its children
    for k in range(m - n_clusters - 1, -1, -1):
        node[children[k]] = node[m + k]
    roots, leaf_root = np.unique(node[:m], return_inverse=True)
    rows = np.bincount(leaf_root, weights=sizes, minlength=roots.shape[0])
    first = np.full(roots.shape[0], m)
    np.minimum.at(first, leaf_root, np.arange(m))
    order = np.lexsort((first, -rows))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return rank[leaf_root].astype(np.int32)


def linkage_matrix(model: Any) -> np.ndarray:
    """The merge tree of a fitted agglomerative model as a scipy linkage matrix.

    Works for this module's :class:`AgglomerativeClustering` (leaves are its
    micro-clusters) and for scikit-learn's (fitted with ``compute_distances=True``).

    Parameters
    ----------
    model : fitted estimator with ``children_`` and ``distances_``

    Returns
    -------
    Z : ndarray of shape (n_leaves - 1, 4), float64
        ``[child, child, height, leaves under the node]``, for
        ``scipy.cluster.hierarchy.dendrogram``.  Column 3 counts leaves (scipy
        requires at most ``n_leaves``); rows under each node are in
        ``model.counts_``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> linkage_matrix(AgglomerativeClustering(2).fit(X)).tolist()
    [[0.0, 1.0, 1.0, 2.0], [2.0, 3.0, 7.767453465154029, 3.0]]

    For a dendrogram with the rows of each micro-cluster as leaf labels::

        dendrogram(linkage_matrix(model), labels=model.micro_sizes_.tolist())
    """
    children = np.asarray(model.children_, dtype=np.int64)
    if not hasattr(model, "distances_"):
        raise ValueError(f"{type(model).__name__} has no distances_; fit it with compute_distances=True.")
    n_leaves = children.shape[0] + 1
    leaves = np.ones(2 * n_leaves - 1)
    for k, (a, b) in enumerate(children):
        leaves[n_leaves + k] = leaves[a] + leaves[b]
    return np.column_stack([children.astype(np.float64), np.asarray(model.distances_, np.float64),
                            leaves[n_leaves:]])


# -- the estimator ---------------------------------------------------------------
def _available_memory() -> int:
    import psutil

    return psutil.virtual_memory().available


def _check_tree_memory(m: int) -> None:
    """Refuse a tree whose m x m matrix would not fit in this machine's free memory."""
    need = 8.0 * m * m
    avail = _available_memory()
    if need > 0.5 * avail:
        raise ValueError(
            f"The linkage of {m} micro-clusters needs {need / 2**30:.1f} GiB (8 * m^2 bytes), more than "
            f"half of the {avail / 2**30:.1f} GiB available; lower n_micro."
        )


def _take(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[labels]


def _nearest_label(block: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances_argmin

    return labels[pairwise_distances_argmin(block, centers)]


class AgglomerativeClustering(ClusterMixin, BaseEstimator):
    """Agglomerative clustering of a dask array in two stages: k-means micro-clusters, exact linkage.

    Stage 1 summarises the rows by ``n_micro`` micro-clusters with the distributed
    :class:`cluster_lib.KMeans` (no rows gathered); stage 2 builds the exact
    agglomerative tree of the non-empty micro-centroids, weighted by their rows,
    in memory.  Memory is ``O(n_micro^2)`` for the tree plus what k-means needs,
    whatever the number of rows.  With ``n_micro >= n_samples`` every row is its
    own micro-cluster and the result equals scikit-learn's
    ``AgglomerativeClustering`` (euclidean, no connectivity).

    Parameters
    ----------
    n_clusters : int, default=2
        Clusters to find; at most the number of non-empty micro-clusters (a
        ``ValueError`` says so otherwise, rather than silently returning fewer).
    linkage : {"ward", "average", "complete", "single"}, default="ward"
        ``"ward"``: Ward on micro-centroids weighted by their rows (the exact Ward
        criterion for rows replaced by their micro-centroid); ``"average"``: UPGMA
        from the centroid distances, merges averaged by rows; ``"complete"``,
        ``"single"``: maximum / minimum centroid distance.
    n_micro : int, default=1000
        Micro-clusters of stage 1.  The tree takes ``8 * n_micro^2`` bytes.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means of stage 1.
    persist : bool or "auto", default="auto"
        Passed to :class:`cluster_lib.KMeans`: keep X in the workers' memory
        during stage 1, or stream it from its source on every pass.
    micro_max_iter : int, default=20
        Lloyd iterations of stage 1; micro-clusters need not converge, so running
        out of iterations is not warned about (``micro_kmeans_.n_iter_`` tells).

    Attributes
    ----------
    labels_ : dask array (numpy array for numpy input) of shape (n_samples,), int32
        Final cluster of each row: its micro-cluster's label, a lazy map over the
        k-means labels.  Clusters are numbered by decreasing rows (0 is the largest),
        ties by their first micro-cluster.
    n_clusters_ : int
    micro_centers_ : ndarray of shape (m, n_features)
        The non-empty micro-centroids (the rows themselves in exact mode), the
        leaves of the tree.
    micro_sizes_ : ndarray of shape (m,), int64
        Rows in each micro-cluster: the weights of the linkage.
    micro_labels_ : ndarray of shape (m,), int32
        Final cluster of each micro-cluster.
    micro_kmeans_ : cluster_lib.KMeans or None
        The fitted stage 1 (None in exact mode).
    children_ : ndarray of shape (m - 1, 2), int64
        The merge tree of the micro-clusters in scikit-learn's format: merge ``k``
        joins nodes ``children_[k]`` (ids < m are micro-clusters) into node ``m + k``.
    distances_ : ndarray of shape (m - 1,), float64
        Merge heights in scikit-learn's units (for ward scipy's
        ``sqrt(2 |A||B| / (|A|+|B|)) ||c_A - c_B||``, with row counts as sizes).
    counts_ : ndarray of shape (m - 1,), int64
        Rows under each node.
    n_leaves_ : int
        m, the number of non-empty micro-clusters.
    n_features_in_ : int
    timings_ : dict
        Seconds spent in each stage.

    See Also
    --------
    linkage_matrix : the tree as a scipy linkage matrix, for a dendrogram.

    Notes
    -----
    ``predict`` sends a row to its nearest micro-centroid (in micro mode the same
    k-means assignment that gave ``labels_``, so ``predict(X_train)`` equals
    ``labels_``).  Parameters of scikit-learn's estimator not offered here:
    ``metric`` (euclidean only; L2-normalise rows first for cosine),
    ``connectivity``, ``distance_threshold`` and ``compute_full_tree`` (the full
    tree of the micro-clusters is always built).

    Examples
    --------
    >>> import dask.array as da
    >>> X = da.random.RandomState(0).normal(size=(20_000, 8), chunks=5_000)
    >>> model = AgglomerativeClustering(3, n_micro=100, random_state=0).fit(X)
    >>> model.children_.shape, model.labels_.dtype
    ((99, 2), dtype('int32'))
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "linkage": [StrOptions(set(_METHODS))],
        "n_micro": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "persist": ["boolean", StrOptions({"auto"})],
        "micro_max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters: int = 2,
        *,
        linkage: str = "ward",
        n_micro: int = 1000,
        random_state: Any = None,
        persist: bool | str = "auto",
        micro_max_iter: int = 20,
    ) -> None:
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.n_micro = n_micro
        self.random_state = random_state
        self.persist = persist
        self.micro_max_iter = micro_max_iter

    def fit(self, X: Any, y: Any = None) -> AgglomerativeClustering:
        """Find the micro-clusters, build their tree and cut it into ``n_clusters``.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : AgglomerativeClustering
        """
        t0 = time.perf_counter()
        validate_params(self)
        X, was_numpy = as_dask_2d(X)
        n, d = X.shape
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} should be >= n_clusters={self.n_clusters}.")
        exact = self.n_micro >= n
        if not exact and self.n_clusters > self.n_micro:
            raise ValueError(
                f"n_clusters={self.n_clusters} should be <= n_micro={self.n_micro}: every cluster is a "
                "union of micro-clusters; increase n_micro."
            )
        _check_tree_memory(min(n, self.n_micro))
        self.timings_ = {}
        if exact:
            # n <= n_micro rows: small enough to hold, like the micro-centroids
            centers = np.asarray(X.compute())
            sizes = np.ones(n, np.int64)
            self.micro_kmeans_ = None
            micro_rows = None
        else:
            centers, sizes, micro_rows = self._micro_clusters(X)
        self.timings_["micro"] = time.perf_counter() - t0
        m = centers.shape[0]
        if self.n_clusters > m:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than the {m} non-empty micro-clusters "
                f"(n_micro={self.n_micro}); the data may have fewer distinct rows than that. "
                "Lower n_clusters or increase n_micro."
            )
        t = time.perf_counter()
        centers64 = centers.astype(np.float64)
        if not np.isfinite(centers64).all():
            raise ValueError("Input X contains NaN or infinity.")
        children, distances, counts = _weighted_linkage(centers64, sizes.astype(np.float64), self.linkage)
        micro_labels = _cut(children, sizes, self.n_clusters)
        self.timings_["linkage"] = time.perf_counter() - t
        logger.info("%s linkage of %d micro-clusters: %.3f s", self.linkage, m, self.timings_["linkage"])

        self.micro_centers_ = centers
        self.micro_sizes_ = sizes
        self.micro_labels_ = micro_labels
        self.children_ = children
        self.distances_ = distances
        self.counts_ = np.rint(counts).astype(np.int64)
        self.n_leaves_ = m
        self.n_clusters_ = int(self.n_clusters)
        self.n_features_in_ = d
        if exact:
            self._lut = micro_labels
            self.labels_ = micro_labels.copy() if was_numpy else da.from_array(micro_labels, chunks=(X.chunks[0],))
        else:
            self._lut = self._kmeans_lut(micro_rows, micro_labels)
            km_labels = self.micro_kmeans_.labels_
            if was_numpy:
                self.labels_ = self._lut[np.asarray(km_labels)]
            else:
                self.labels_ = km_labels.map_blocks(_take, self._lut, dtype=np.int32)
        self.timings_["total"] = time.perf_counter() - t0
        return self

    def _micro_clusters(self, X: da.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 1: k-means micro-clusters; returns the non-empty ones' centers, sizes and k-means ids."""
        km = KMeans(self.n_micro, max_iter=self.micro_max_iter, random_state=self.random_state,
                    persist=self.persist)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(X)
        self.micro_kmeans_ = km
        labels = km.labels_
        if isinstance(labels, da.Array):
            counts = da.bincount(labels, minlength=self.n_micro).compute()
        else:
            counts = np.bincount(labels, minlength=self.n_micro)
        rows = np.flatnonzero(counts)
        logger.info("stage 1: %d non-empty micro-clusters of %d after %d iterations",
                    rows.shape[0], self.n_micro, km.n_iter_)
        return km.cluster_centers_[rows], counts[rows].astype(np.int64), rows

    def _kmeans_lut(self, micro_rows: np.ndarray, micro_labels: np.ndarray) -> np.ndarray:
        """Final label of every k-means center; an empty one takes its nearest non-empty neighbour's."""
        C = self.micro_kmeans_.cluster_centers_.astype(np.float64)
        lut = np.empty(C.shape[0], np.int32)
        lut[micro_rows] = micro_labels
        empty = np.setdiff1d(np.arange(C.shape[0]), micro_rows)
        if empty.size:
            lut[empty] = _nearest_label(C[empty], C[micro_rows], micro_labels)
        return lut

    def predict(self, X: Any) -> Any:
        """Cluster of the nearest micro-centroid of every row (dask array for dask input).

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : dask array (numpy array for numpy input) of shape (n_samples,), int32
        """
        Xd, was_numpy = check_fitted_input(self, X, "micro_labels_")
        if self.micro_kmeans_ is not None:
            km_labels = self.micro_kmeans_.predict(Xd)
            out = km_labels.map_blocks(_take, self._lut, dtype=np.int32)
        else:
            centers = self.micro_centers_.astype(np.float64)
            out = Xd.map_blocks(_nearest_label, centers, self.micro_labels_, drop_axis=1, dtype=np.int32)
        return np.asarray(out.compute()) if was_numpy else out
