"""Per-chunk numpy kernels of the scores and the merges of their small statistics.

Nothing here knows about dask: each kernel takes one chunk of rows and its labels
and returns statistics whose size depends on the number of clusters, never on the
number of rows. The merges are associative, so a tree reduction can apply them in
any grouping.

Precision: float32 rows stay float32 in memory; sums are accumulated in float64 one
cache-sized block at a time, and distances to float64 centroids are taken as
``(x - c_hi) - c_lo`` with ``c = c_hi + c_lo`` split into two float32 parts, so that
an offset shared by the rows and the centroid cancels exactly instead of costing
digits (uncentered data). Measured on one 100k x 200 float32 chunk, 100 clusters,
one thread: sums through a per-block sparse one-hot product 8 ms (``np.add.at``
700 ms, one whole-chunk float64 sparse product 41 ms, sort + ``reduceat`` 63 ms);
distances to centroids by blocks of 512 rows 12 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "LabelStats",
    "centroid_distance_rows",
    "distance_sums",
    "distance_stats_chunk",
    "label_stats_chunk",
    "merge_label_stats",
    "segment_sums",
    "split_centers",
    "sum_arrays",
]

# Rows per block: the float64 copy of a sums block (~6 MiB) and the float32
# difference block of the distances (~0.5 MiB at 200 features) stay in cache. The
# block buffers are allocated once per chunk: dask workers run with
# MALLOC_TRIM_THRESHOLD_ set, which makes glibc mmap (and page-fault) every large
# temporary afresh; one temporary per block made the kernels 10x slower there.
_SUM_BLOCK_BYTES = 6 << 20
_DIST_BLOCK_BYTES = 1 << 19


def _block_rows(n_features: int, itemsize: int, budget: int) -> int:
    return int(min(8192, max(64, budget // max(1, n_features * itemsize))))


@dataclass(frozen=True)
class LabelStats:
    """Sufficient statistics of the rows seen so far, per distinct label.

    Attributes
    ----------
    labels : ndarray of shape (m,)
        Distinct labels, sorted, the noise label excluded.
    counts : ndarray of shape (m,), int64
        Rows per label.
    sums : ndarray of shape (m, n_features), float64, or None
        Sum of the rows per label; None when only sizes were asked for.
    m2 : ndarray of shape (m,), float64, or None
        Sum of squared euclidean distances of the rows to their label's mean of
        these rows; None unless asked for.
    n_noise : int
        Rows carrying the noise label (0 without one).
    """

    labels: np.ndarray
    counts: np.ndarray
    sums: np.ndarray | None = None
    m2: np.ndarray | None = None
    n_noise: int = 0


def split_centers(centers: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """Split float64 ``centers`` into the parts the distance kernel subtracts.

    Parameters
    ----------
    centers : ndarray of shape (k, n_features), float64
    dtype : dtype
        The kernels' working dtype (float32 or float64).

    Returns
    -------
    hi : ndarray of shape (k, n_features), ``dtype``
        ``centers`` rounded to ``dtype``.
    lo : ndarray of shape (k, n_features), float32, or None
        The rounding residual ``centers - hi`` for float32; None for float64.
    """
    hi = np.ascontiguousarray(centers, dtype=dtype)
    if hi.dtype == np.float64:
        return hi, None
    return hi, (centers - hi).astype(np.float32)


def segment_sums(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Float64 sum of the rows of ``x`` per code.

    Parameters
    ----------
    x : ndarray of shape (n, n_features)
        Any real dtype; each block is upcast to float64 while it is in cache.
    codes : ndarray of shape (n,), int
        Group of every row, in ``[0, n_groups)``.
    n_groups : int

    Returns
    -------
    sums : ndarray of shape (n_groups, n_features), float64
    """
    n, d = x.shape
    out = np.zeros((n_groups, d), dtype=np.float64)
    step = max(1, min(n, _block_rows(d, 8, _SUM_BLOCK_BYTES)))
    ones = np.ones(step)
    indptr = np.arange(step + 1)
    buf = np.empty((step, d), dtype=np.float64) if x.dtype != np.float64 else None
    for start in range(0, n, step):
        c = codes[start : start + step]
        m = c.shape[0]
        # column j of the one-hot matrix holds a single 1 in row codes[j]: CSC by construction
        onehot = sp.csc_matrix((ones[:m], c, indptr[: m + 1]), shape=(n_groups, m))
        xb = x[start : start + step]
        if buf is not None:
            np.copyto(buf[:m], xb)
            xb = buf[:m]
        out += onehot @ xb
    return out


def distance_sums(
    x: np.ndarray, codes: np.ndarray, hi: np.ndarray, lo: np.ndarray | None
) -> np.ndarray:
    """Per center, the sums of squared and of plain euclidean distances of its rows.

    Parameters
    ----------
    x : ndarray of shape (n, n_features)
    codes : ndarray of shape (n,), int
        Center of every row, in ``[0, k]``; rows with code ``k`` are skipped.
    hi, lo : ndarrays of shape (k, n_features)
        The centers as returned by :func:`split_centers`.

    Returns
    -------
    sums : ndarray of shape (2, k), float64
        Row 0: sum of squared distances; row 1: sum of distances.
    """
    n, d = x.shape
    k = hi.shape[0]
    sq = np.zeros(k, dtype=np.float64)
    dist = np.zeros(k, dtype=np.float64)
    skip = bool(n) and int(codes.max()) >= k
    step = max(1, min(n, _block_rows(d, hi.dtype.itemsize, _DIST_BLOCK_BYTES)))
    buf = np.empty((step, d), dtype=hi.dtype)
    lo_buf = np.empty((step, d), dtype=np.float32) if lo is not None else None
    x_buf = np.empty((step, d), dtype=x.dtype) if skip else None
    r = np.empty(step, dtype=hi.dtype)
    for start in range(0, n, step):
        c = codes[start : start + step]
        xb = x[start : start + step]
        if x_buf is not None:
            rows = np.flatnonzero(c < k)
            c = c[rows]
            xb = np.take(xb, rows, axis=0, out=x_buf[: rows.shape[0]], mode="clip")
        m = c.shape[0]
        diff = buf[:m]
        np.take(hi, c, axis=0, out=diff, mode="clip")  # "raise" buffers a copy
        np.subtract(xb, diff, out=diff)
        if lo_buf is not None:
            np.take(lo, c, axis=0, out=lo_buf[:m], mode="clip")
            diff -= lo_buf[:m]
        r64 = np.einsum("ij,ij->i", diff, diff, out=r[:m]).astype(np.float64)
        sq += np.bincount(c, weights=r64, minlength=k)
        dist += np.bincount(c, weights=np.sqrt(r64, out=r64), minlength=k)
    return np.stack([sq, dist])


def label_stats_chunk(
    x: np.ndarray | None,
    labels: np.ndarray,
    *,
    noise_label: int | None,
    with_sums: bool,
    with_m2: bool,
    dtype: np.dtype | None = None,
) -> LabelStats:
    """Pass-1 kernel: distinct labels, counts, and optionally sums and m2 of one chunk.

    Parameters
    ----------
    x : ndarray of shape (n, n_features) or None
        The chunk's rows; may be None when ``with_sums`` is False.
    labels : ndarray of shape (n,), int
    noise_label : int or None
        Label whose rows are counted in ``n_noise`` and otherwise ignored.
    with_sums, with_m2 : bool
        Whether to compute ``sums`` and ``m2`` (``m2`` needs ``sums``).
    dtype : dtype, optional
        Working dtype for ``m2`` (float32 or float64).

    Returns
    -------
    LabelStats
    """
    uniq, inv = np.unique(labels, return_inverse=True)
    inv = inv.reshape(-1)
    counts = np.bincount(inv, minlength=uniq.shape[0]).astype(np.int64)
    n_noise = 0
    codes = inv
    if noise_label is not None:
        j = int(np.searchsorted(uniq, noise_label))
        if j < uniq.shape[0] and uniq[j] == noise_label:
            n_noise = int(counts[j])
            keep = np.ones(uniq.shape[0], dtype=bool)
            keep[j] = False
            # noise rows get code m (one past the kept labels): summed into a dropped row
            remap = np.cumsum(keep) - 1
            remap[j] = uniq.shape[0] - 1
            codes = remap[inv]
            uniq, counts = uniq[keep], counts[keep]
    m = uniq.shape[0]
    if not with_sums:
        return LabelStats(uniq, counts, n_noise=n_noise)
    sums = segment_sums(x, codes, m + (n_noise > 0))[:m]
    m2 = None
    if with_m2:
        means = sums / np.maximum(counts, 1)[:, None]
        hi, lo = split_centers(means, dtype if dtype is not None else np.float64)
        m2 = distance_sums(x, codes, hi, lo)[0]
    return LabelStats(uniq, counts, sums, m2, n_noise)


def distance_stats_chunk(
    x: np.ndarray,
    labels: np.ndarray,
    all_labels: np.ndarray,
    centers: tuple[np.ndarray, np.ndarray | None],
    *,
    noise_label: int | None,
) -> np.ndarray:
    """Pass-2 kernel: per cluster, sums of squared and plain distances to its centroid.

    Parameters
    ----------
    x : ndarray of shape (n, n_features)
    labels : ndarray of shape (n,), int
    all_labels : ndarray of shape (k,)
        Every distinct non-noise label of the data, sorted (from pass 1): the
        position of a label in it is its row in ``centers``.
    centers : pair of ndarrays of shape (k, n_features)
        ``(hi, lo)`` from :func:`split_centers`.
    noise_label : int or None
        Label whose rows are skipped.

    Returns
    -------
    sums : ndarray of shape (2, k), float64
        Row 0: sum of squared distances; row 1: sum of distances.
    """
    k = all_labels.shape[0]
    uniq, inv = np.unique(labels, return_inverse=True)
    pos = np.searchsorted(all_labels, uniq)
    found = pos < k
    found[found] = all_labels[pos[found]] == uniq[found]
    if noise_label is not None:
        is_noise = uniq == noise_label
        pos[is_noise] = k
        found |= is_noise
    if not found.all():
        raise RuntimeError(
            f"labels {uniq[~found][:5].tolist()} appeared in the second pass but not in the first: "
            "the labels array must give the same values every time it is computed (persist it)."
        )
    return distance_sums(x, pos[inv.reshape(-1)], *centers)


def merge_label_stats(*parts: LabelStats) -> LabelStats:
    """Combine :class:`LabelStats` of disjoint sets of rows (associative).

    Means and ``m2`` are merged with the pairwise update of Chan, Golub and LeVeque
    generalised to many parts: ``m2 = sum_i m2_i + n_i * ||mean_i - mean||^2``, which
    only ever subtracts means, never raw sums of squares.
    """
    if len(parts) == 1:
        return parts[0]
    cat_labels = np.concatenate([p.labels for p in parts])
    cat_counts = np.concatenate([p.counts for p in parts])
    uniq, inv = np.unique(cat_labels, return_inverse=True)
    inv = inv.reshape(-1)
    m = uniq.shape[0]
    counts = np.zeros(m, dtype=np.int64)
    np.add.at(counts, inv, cat_counts)
    n_noise = sum(p.n_noise for p in parts)
    if parts[0].sums is None:
        return LabelStats(uniq, counts, n_noise=n_noise)
    cat_sums = np.concatenate([p.sums for p in parts])
    sums = segment_sums(cat_sums, inv, m)
    m2 = None
    if parts[0].m2 is not None:
        part_means = cat_sums / np.maximum(cat_counts, 1)[:, None]
        dev = part_means - (sums / np.maximum(counts, 1)[:, None])[inv]
        between = cat_counts * np.einsum("ij,ij->i", dev, dev)
        m2 = np.bincount(inv, weights=np.concatenate([p.m2 for p in parts]) + between, minlength=m)
    return LabelStats(uniq, counts, sums, m2, n_noise)


def sum_arrays(*parts: np.ndarray) -> np.ndarray:
    """Elementwise sum of same-shape arrays (the merge of pass-2 statistics)."""
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


def centroid_distance_rows(
    centers: np.ndarray, centered: np.ndarray, sqnorms: np.ndarray, rows: slice
) -> np.ndarray:
    """Euclidean distances from ``centers[rows]`` to every center.

    The bulk comes from one matrix product on the centered centers; the pairs
    where that expansion could cancel (squared distance below 1e-6 of the squared
    norms, the diagonal included) are recomputed exactly from the differences of
    the original centers, so identical centers are exactly 0 apart.

    Parameters
    ----------
    centers : ndarray of shape (k, n_features), float64
    centered : ndarray of shape (k, n_features), float64
        ``centers`` minus their mean.
    sqnorms : ndarray of shape (k,), float64
        Squared norms of ``centered``'s rows.
    rows : slice
        Rows of the distance matrix to return.

    Returns
    -------
    distances : ndarray of shape (len(rows), k), float64
    """
    scale = sqnorms[rows, None] + sqnorms[None, :]
    d2 = centered[rows] @ centered.T
    d2 *= -2.0
    d2 += scale
    ii, jj = np.nonzero(d2 <= 1e-6 * scale)
    for b in range(0, ii.shape[0], 4096):
        i, j = ii[b : b + 4096], jj[b : b + 4096]
        diff = centers[rows.start + i] - centers[j]
        d2[i, j] = np.einsum("ij,ij->i", diff, diff)
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2, out=d2)
