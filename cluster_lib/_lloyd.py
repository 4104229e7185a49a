"""Per-chunk k-means kernels: one fused pass of distances, assignment and statistics.

A chunk is processed in sub-blocks small enough to stay in cache: each sub-block
is centred (the data mean is subtracted, as scikit-learn does, so that the
``||x||^2 - 2 x.c + ||c||^2`` expansion keeps its float32 accuracy), multiplied
by the centers in one float32 GEMM, and then a compiled loop picks every row's
nearest center and adds the still-cached row into its cluster's sums.  The data
is read from memory once per iteration; everything else is the GEMM.

Every kernel returns small statistics (per-cluster sums and counts, inertia,
the rows farthest from their centers as re-seeding candidates) that add up
across chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["LloydStats", "lloyd_chunk", "assign_chunk", "combine_stats", "SUBBLOCK_ROWS"]

#: Rows per sub-block: measured best of 1024..8192 at d=200, k=100 on one core.
SUBBLOCK_ROWS = 4096


@numba.njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _center(Xb, mu, out):  # pragma: no cover - compiled
    """out = Xb - mu rounded to float32; mu is float64 and the difference is taken in float64,
    so rows far from the origin keep their digits whatever the input dtype."""
    b, d = Xb.shape
    for i in range(b):
        for t in range(d):
            out[i, t] = np.float32(np.float64(Xb[i, t]) - mu[t])


@numba.njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _nearest(DT, c2h, best, arg):  # pragma: no cover - compiled
    """Per column i of DT = C @ Xc.T (k, b): min_j and argmin_j of c2h[j] - DT[j, i].

    Sweeping centers in the outer loop keeps the inner loop over rows branch-free and
    contiguous, so it runs in SIMD lanes (the row-wise argmin cannot).
    """
    k, b = DT.shape
    for i in range(b):
        best[i] = c2h[0] - DT[0, i]
        arg[i] = 0
    for j in range(1, k):
        cj = c2h[j]
        for i in range(b):
            v = cj - DT[j, i]
            m = v < best[i]
            best[i] = v if m else best[i]
            arg[i] = j if m else arg[i]


@numba.njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _accumulate(Xc, w, arg, best, sums, counts, dist):  # pragma: no cover - compiled
    """Add each centred row (times its weight) to its cluster's sums; squared distances.

    w is an empty array for unit weights. Returns the weighted inertia of the rows.
    """
    b, d = Xc.shape
    weighted = w.shape[0] > 0
    inertia = 0.0
    for i in range(b):
        bj = arg[i]
        wi = w[i] if weighted else np.float32(1.0)
        x2 = np.float32(0.0)
        if weighted:
            for t in range(d):
                xv = Xc[i, t]
                sums[bj, t] += wi * xv
                x2 += xv * xv
        else:
            for t in range(d):
                xv = Xc[i, t]
                sums[bj, t] += xv
                x2 += xv * xv
        counts[bj] += wi
        di = x2 + np.float32(2.0) * best[i]
        di = di if di > 0 else np.float32(0.0)
        dist[i] = di
        inertia += wi * di
    return inertia


@numba.njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
def _distances(Xc, best, dist):  # pragma: no cover - compiled
    b, d = Xc.shape
    for i in range(b):
        x2 = np.float32(0.0)
        for t in range(d):
            x2 += Xc[i, t] * Xc[i, t]
        di = x2 + np.float32(2.0) * best[i]
        dist[i] = di if di > 0 else np.float32(0.0)


@dataclass
class LloydStats:
    """Sufficient statistics of one Lloyd iteration over some rows.

    Attributes
    ----------
    sums : ndarray of shape (k, d), float64
        Per-cluster (weighted) sums of the centred rows.
    counts : ndarray of shape (k,), float64
        Per-cluster (weighted) row counts.
    inertia : float
        Sum of (weighted) squared distances to the nearest center.
    far_dist : ndarray of shape (m,), float32
        Squared distances of the rows farthest from their centers (re-seeding candidates).
    far_rows : ndarray of shape (m, d), float32
        Those rows, centred.
    """

    sums: np.ndarray
    counts: np.ndarray
    inertia: float
    far_dist: np.ndarray
    far_rows: np.ndarray


def _subblocks(X: np.ndarray, C: np.ndarray, mu: np.ndarray):
    """Yield (start, stop, centred rows, nearest-center min, argmin) per cache-sized sub-block.

    The buffers are reused: a consumer must be done with them before the next step.
    """
    n, d = X.shape
    k = C.shape[0]
    sb = min(SUBBLOCK_ROWS, max(n, 1))
    Xc = np.empty((sb, d), np.float32)
    DT = np.empty((k, sb), np.float32)
    best = np.empty(sb, np.float32)
    arg = np.empty(sb, np.int32)
    c2h = 0.5 * np.einsum("ij,ij->i", C.astype(np.float64), C.astype(np.float64))
    c2h = c2h.astype(np.float32)
    for s in range(0, n, sb):
        e = min(s + sb, n)
        b = e - s
        if b != sb:  # the last, short sub-block gets buffers of its own shape (matmul's out= must be contiguous)
            Xc, DT = np.empty((b, d), np.float32), np.empty((k, b), np.float32)
        _center(X[s:e], mu, Xc)
        np.matmul(C, Xc.T, out=DT)
        _nearest(DT, c2h, best, arg)
        yield s, e, Xc, best[:b], arg[:b]


def lloyd_chunk(
    X: np.ndarray,
    centers: np.ndarray,
    mean: np.ndarray,
    sample_weight: np.ndarray | None = None,
    n_far: int = 0,
) -> LloydStats:
    """One Lloyd E-step and M-step statistics over one chunk.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Rows of the chunk (any float dtype; computed in float32).
    centers : ndarray of shape (k, d)
        Current centers, in centred coordinates (data mean subtracted).
    mean : ndarray of shape (d,)
        The data mean subtracted from every row.
    sample_weight : ndarray of shape (n,), optional
    n_far : int
        How many of the rows farthest from their centers to return.

    Returns
    -------
    LloydStats
    """
    n, d = X.shape
    C = np.ascontiguousarray(centers, dtype=np.float32)
    k = C.shape[0]
    mu = np.ascontiguousarray(mean, dtype=np.float64)
    dist = np.empty(n, np.float32)
    sums32 = np.zeros((k, d), np.float32)
    sums = np.zeros((k, d), np.float64)
    counts = np.zeros(k, np.float64)
    w_all = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float32)
    no_w = np.empty(0, np.float32)
    inertia = 0.0
    for s, e, Xc, best, arg in _subblocks(X, C, mu):
        w = no_w if w_all is None else w_all[s:e]
        inertia += _accumulate(Xc, w, arg, best, sums32, counts, dist[s:e])
        # float32 partial sums over one sub-block only, so accuracy does not degrade with n
        sums += sums32
        sums32[:] = 0.0
    far_dist, far_rows = _farthest(X, dist, mu, n_far)
    return LloydStats(sums, counts, float(inertia), far_dist, far_rows)


def _farthest(X: np.ndarray, dist: np.ndarray, mu: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    m = min(m, dist.shape[0])
    if m <= 0:
        return np.empty(0, np.float32), np.empty((0, X.shape[1]), np.float32)
    idx = np.argpartition(dist, -m)[-m:]
    idx = idx[np.argsort(-dist[idx], kind="stable")]
    return dist[idx].copy(), (np.asarray(X[idx], dtype=np.float64) - mu).astype(np.float32)


def combine_stats(parts: list[LloydStats], n_far: int = 0) -> LloydStats:
    """Add up the statistics of several chunks (a node of the tree reduction)."""
    first = parts[0]
    sums = first.sums.copy()
    counts = first.counts.copy()
    inertia = first.inertia
    for p in parts[1:]:
        sums += p.sums
        counts += p.counts
        inertia += p.inertia
    far_dist = np.concatenate([p.far_dist for p in parts])
    far_rows = np.concatenate([p.far_rows for p in parts])
    if far_dist.shape[0] > n_far:
        keep = np.argsort(-far_dist, kind="stable")[:n_far]
        far_dist, far_rows = far_dist[keep], far_rows[keep]
    return LloydStats(sums, counts, inertia, far_dist, far_rows)


def assign_chunk(X: np.ndarray, centers: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center and squared distance to it, for every row of a chunk.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    centers : ndarray of shape (k, d)
        Centers in centred coordinates.
    mean : ndarray of shape (d,)

    Returns
    -------
    labels : ndarray of shape (n,), int32
    dist : ndarray of shape (n,), float32
    """
    n = X.shape[0]
    C = np.ascontiguousarray(centers, dtype=np.float32)
    mu = np.ascontiguousarray(mean, dtype=np.float64)
    labels = np.empty(n, np.int32)
    dist = np.empty(n, np.float32)
    for s, e, Xc, best, arg in _subblocks(X, C, mu):
        labels[s:e] = arg
        _distances(Xc, best, dist[s:e])
    return labels, dist
