"""Exact PCA of tall descriptor arrays: one blockwise pass for the covariance, one small ``eigh``.

For ``n`` in the millions and ``d`` up to a few thousand the d x d covariance is
small, so the whole fit is one pass over the data: each row chunk returns its
row count, mean and scatter matrix ``(X - mean)^T (X - mean)``; a tree of exact
pooled-covariance combines (Chan et al.) adds them up in float64; the driver
runs ``numpy.linalg.eigh`` on the d x d result.

Why each chunk centres itself before the product: descriptors are far from
centred (a mean offset of 50 on unit-variance features is common), and the
textbook ``X^T X - n mean mean^T`` then cancels away most of the digits.  In
float32 that loses percent-level accuracy on the small eigenvalues.  Instead each
chunk subtracts a provisional shift (the mean of ~1000 rows spread over the
chunk, rounded to the data's dtype), multiplies the shifted block in the data's
own dtype (float32 BLAS runs at twice the float64 rate), accumulates the
products over sub-blocks of ``_BLOCK_ROWS`` rows into float64, and corrects for
the shift exactly at the end: ``S = Y^T Y - n r r^T`` with ``Y = X - shift`` and
``r`` the mean of ``Y``.  Because ``r`` is small no digits cancel; measured on
100k x 512 float32 rows with offset 50 the scatter matrix is within 4e-8
(relative Frobenius) of the float64 result, against 1e-5 for the uncentred
product, at ~1.3x the cost of the bare ``X^T X`` (one core, 16384 x 512 chunk).
"""

from __future__ import annotations

import logging
import time
from numbers import Integral
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from cluster_lib._compat import (
    Interval,
    RealNotInt,
    StrOptions,
    validate_data,
    validate_params,
)
from cluster_lib._dask_utils import row_blocks, tree_reduce

__all__ = ["PCA"]

logger = logging.getLogger(__name__)

#: Rows per sub-block of a chunk's scatter product: short float32 accumulations
#: inside BLAS, each added to a float64 total (2x more accurate than one long
#: product, ~2% slower), and a shifted copy that stays in cache.
_BLOCK_ROWS = 16_384

#: Rows of a chunk averaged for its provisional shift.
_SHIFT_ROWS = 1024

#: Row chunk size used when numpy input is handed to dask-ml, in MiB.
_NUMPY_CHUNK_MIB = 64

ChunkStats = tuple[int, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- kernels
def chunk_stats(X: np.ndarray) -> ChunkStats:
    """Row count, mean and scatter matrix of one chunk of rows.

    Assumes ``X`` is a 2-D float32 or float64 array (validated upstream).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)

    Returns
    -------
    n_rows : int
    mean : ndarray of shape (n_features,), float64
    scatter : ndarray of shape (n_features, n_features), float64
        ``(X - mean).T @ (X - mean)``; products in ``X``'s dtype, sums in float64.

    Raises
    ------
    ValueError
        If ``X`` holds NaN or infinity (seen for free in the column sums).
    """
    n, d = X.shape
    if n == 0:
        return 0, np.zeros(d), np.zeros((d, d))
    shift = X[:: max(1, n // _SHIFT_ROWS)].mean(axis=0, dtype=np.float64).astype(X.dtype)
    buf = np.empty((min(n, _BLOCK_ROWS), d), dtype=X.dtype)
    scatter = colsum = None
    for start in range(0, n, _BLOCK_ROWS):
        block = X[start : start + _BLOCK_ROWS]
        y = buf[: block.shape[0]]
        np.subtract(block, shift, out=y)
        gram = y.T @ y  # numpy sends y.T @ y to BLAS syrk: half a GEMM
        ysum = y.sum(axis=0)
        if scatter is None:
            scatter, colsum = gram.astype(np.float64), ysum.astype(np.float64)
        else:
            scatter += gram
            colsum += ysum
    if not np.isfinite(colsum).all():
        raise ValueError("Input X contains NaN or infinity.")
    resid = colsum / n
    scatter -= np.multiply.outer(n * resid, resid)
    return n, shift + resid, scatter


def combine_stats(parts: list[ChunkStats]) -> ChunkStats:
    """Pool per-chunk ``(n, mean, scatter)`` into those of all the rows together.

    Exact: ``S = sum_i S_i + sum_i n_i (m_i - m)(m_i - m)^T`` with ``m`` the pooled
    mean; the deviations ``m_i - m`` are small, so nothing cancels.

    Parameters
    ----------
    parts : list of (int, ndarray of shape (d,), ndarray of shape (d, d))

    Returns
    -------
    (int, ndarray of shape (d,), ndarray of shape (d, d))
    """
    full = [p for p in parts if p[0] > 0]
    if not full:
        return parts[0]
    counts = np.array([p[0] for p in full], dtype=np.float64)
    means = np.stack([p[1] for p in full])
    n = int(counts.sum())
    mean = counts @ means / n
    dev = means - mean
    scatter = np.sum([p[2] for p in full], axis=0) + (dev.T * counts) @ dev
    return n, mean, scatter


def project(X: np.ndarray, mean: np.ndarray, components: np.ndarray,
            scale: np.ndarray | None = None) -> np.ndarray:
    """``(X - mean) @ components.T [/ scale]`` in ``X``'s dtype.

    Centres before projecting (not ``X @ C.T - mean @ C.T``): with a large mean
    offset the latter loses float32 digits to cancellation.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features), float32 or float64
    mean : ndarray of shape (n_features,)
    components : ndarray of shape (n_components, n_features)
    scale : ndarray of shape (n_components,), optional
        Divides the result (whitening).

    Returns
    -------
    ndarray of shape (n_rows, n_components), dtype of ``X``
    """
    out = (X - mean.astype(X.dtype, copy=False)) @ components.T.astype(X.dtype, copy=False)
    if scale is not None:
        out /= scale.astype(X.dtype, copy=False)
    return out


def reconstruct(Y: np.ndarray, components: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``Y @ components + mean`` in ``Y``'s dtype.

    Parameters
    ----------
    Y : ndarray of shape (n_rows, n_components)
    components : ndarray of shape (n_components, n_features)
    mean : ndarray of shape (n_features,)

    Returns
    -------
    ndarray of shape (n_rows, n_features)
    """
    out = Y @ components.astype(Y.dtype, copy=False)
    out += mean.astype(Y.dtype, copy=False)
    return out


def flip_signs(components: np.ndarray) -> np.ndarray:
    """Make the largest-magnitude entry of every row positive (scikit-learn's PCA convention).

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)

    Returns
    -------
    ndarray of shape (n_components, n_features)
    """
    rows = np.arange(components.shape[0])
    signs = np.sign(components[rows, np.argmax(np.abs(components), axis=1)])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


# --------------------------------------------------------------------------- solvers
def _covariance_fit(X: np.ndarray | da.Array) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, float]:
    """Fit by one pass for the covariance and one d x d ``eigh``.

    Assumes ``X`` is 2-D float32/float64, a dask array chunked by rows only or numpy.

    Returns
    -------
    n_samples : int
    mean : ndarray of shape (n_features,), float64
    variances : ndarray of shape (min(n_samples, n_features),), float64, descending
    components : ndarray of shape (min(n_samples, n_features), n_features), float64
    total_variance : float
    """
    t0 = time.perf_counter()
    if isinstance(X, da.Array):
        parts = [dask.delayed(chunk_stats, pure=True)(b) for b in row_blocks(X)]
        ((n, mean, scatter),) = dask.compute(tree_reduce(parts, combine_stats))
    else:
        n, mean, scatter = chunk_stats(X)
    t1 = time.perf_counter()
    _check_n_samples(n)
    evals, evecs = np.linalg.eigh(scatter / (n - 1))
    # eigh is ascending; tiny negative values are round-off of a PSD matrix
    evals = np.clip(evals[::-1], 0.0, None)
    components = flip_signs(evecs[:, ::-1].T)
    logger.info("PCA covariance pass over %d x %d: %.3f s; eigh: %.3f s",
                n, X.shape[1], t1 - t0, time.perf_counter() - t1)
    k = min(n, X.shape[1])
    return n, mean, evals[:k], components[:k], float(evals.sum())


def _dask_ml_fit(X: np.ndarray | da.Array,
                 random_state: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, float]:
    """Fit with ``dask_ml.decomposition.PCA`` (exact tall-and-skinny QR SVD).

    Only the fitted mean, singular values and right singular vectors are taken
    from dask-ml; everything after that (sign convention, n_components, noise
    variance, transform) is ours.  That sidesteps dask-ml issue #1023:
    ``PCA(svd_solver="randomized").fit(X).transform(X)`` raises ``AttributeError:
    'PCA' object has no attribute 'power_iteration_normalizer'`` with
    scikit-learn >= 1.8, because scikit-learn's ``PCA.__sklearn_tags__`` (called
    from ``check_is_fitted`` in ``transform``) reads a parameter that dask-ml's
    subclass never sets.  We never call dask-ml's ``transform``.

    Returns
    -------
    Same as :func:`_covariance_fit`.
    """
    from dask_ml.decomposition import PCA as DaskMLPCA

    if not isinstance(X, da.Array):
        rows = max(1, int(_NUMPY_CHUNK_MIB * 2**20 // max(1, X.shape[1] * X.dtype.itemsize)))
        X = da.from_array(X, chunks=(rows, X.shape[1]))
    if np.isnan(X.shape[0]):
        X = X.compute_chunk_sizes()
    _check_n_samples(X.shape[0])
    t0 = time.perf_counter()
    est = DaskMLPCA(n_components=None, svd_solver="tsqr", random_state=random_state).fit(X)
    # dask-ml leaves mean_ lazy, and sums float32 in float32: one more (cheap) pass
    mean = X.mean(axis=0, dtype=np.float64).compute()
    logger.info("PCA dask-ml tsqr fit over %d x %d: %.3f s", X.shape[0], X.shape[1],
                time.perf_counter() - t0)
    n = int(X.shape[0])
    variances = np.asarray(est.singular_values_, dtype=np.float64) ** 2 / (n - 1)
    components = flip_signs(np.asarray(est.components_, dtype=np.float64))
    return n, mean, variances, components, float(variances.sum())


def _check_n_samples(n: int) -> None:
    if n < 2:
        raise ValueError(f"n_samples={n} should be >= 2.")


# --------------------------------------------------------------------------- estimator
class PCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Principal component analysis of tall arrays (dask or numpy), exact.

    Linear dimensionality reduction onto the eigenvectors of the sample
    covariance, with the attributes and sign convention of
    ``sklearn.decomposition.PCA(svd_solver="full")``.  The default solver makes
    one pass over the data (blockwise scatter matrices in float64 accumulation,
    tree-reduced) and one d x d ``eigh``; it suits ``n_samples`` in the millions
    and ``n_features`` up to a few thousand.  Dask input gives lazy dask output
    with the same row chunks; numpy input gives numpy output.

    Parameters
    ----------
    n_components : int, float or None, default=None
        Number of components to keep. ``None`` keeps ``min(n_samples,
        n_features)``; an int must lie in ``[1, min(n_samples, n_features)]``; a
        float in ``(0, 1)`` keeps the fewest components whose explained variance
        ratios add up to more than it (as scikit-learn does).
    whiten : bool, default=False
        Divide the projections by the square root of the explained variance, so
        every component has unit variance.
    solver : {"covariance", "dask-ml"}, default="covariance"
        ``"covariance"``: one blockwise pass and a d x d ``eigh`` (fast, exact).
        ``"dask-ml"``: ``dask_ml.decomposition.PCA`` with its exact tall-and-skinny
        QR SVD (``svd_solver="tsqr"``), a reference and fallback; it needs
        known chunk sizes (computed if missing) and one extra pass for the mean.
    random_state : int, RandomState instance or None, default=None
        Passed to dask-ml; both solvers are exact and deterministic, so it has no
        effect on the result.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        Principal axes, by decreasing explained variance; in every row the entry
        of largest magnitude is positive.
    explained_variance_ : ndarray of shape (n_components_,)
        Variance along each component (``n_samples - 1`` denominator).
    explained_variance_ratio_ : ndarray of shape (n_components_,)
    singular_values_ : ndarray of shape (n_components_,)
        Singular values of the centred data, ``sqrt(explained_variance_ * (n_samples - 1))``.
    mean_ : ndarray of shape (n_features,)
    n_components_ : int
    n_samples_ : int
    n_features_in_ : int
    noise_variance_ : float
        Mean of the discarded eigenvalues of the covariance (probabilistic PCA),
        0.0 when none are discarded.

    All arrays are numpy arrays of the training data's dtype (float32 or
    float64), as in scikit-learn; sums and the eigendecomposition are float64.

    Notes
    -----
    For float32 data the per-chunk products run in float32 (twice the BLAS rate
    of float64) on centred values: eigenvalues come out within ~1e-7 of the
    largest one in absolute terms, so an eigenvalue 1e4 times smaller than the
    largest is good to ~1e-3 relative. Pass float64 data to get float64
    products (about 2-3x slower).

    Examples
    --------
    >>> import dask.array as da
    >>> from cluster_lib._pca import PCA
    >>> X = da.random.default_rng(0).normal(50, 1, size=(10_000, 64), chunks=(2_500, 64))
    >>> pca = PCA(n_components=8).fit(X)
    >>> pca.components_.shape
    (8, 64)
    >>> Z = pca.transform(X)          # lazy, chunks ((2500, 2500, 2500, 2500), (8,))
    >>> Z.chunks[0] == X.chunks[0]
    True
    """

    _parameter_constraints: dict = {
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
            None,
        ],
        "whiten": ["boolean"],
        "solver": [StrOptions({"covariance", "dask-ml"})],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components: int | float | None = None, *, whiten: bool = False,
                 solver: str = "covariance", random_state: Any = None) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.solver = solver
        self.random_state = random_state

    # ----------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> PCA:
        """Fit the principal axes of ``X``.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
            Float32 stays float32; other numeric dtypes become float64.
        y : Ignored

        Returns
        -------
        self : PCA
        """
        validate_params(self)
        X = self._check_input(X, reset=True)
        n, d = X.shape
        if not np.isnan(n):  # fail before a pass over millions of rows
            self._check_params_vs_input(int(n), d)
        if self.solver == "covariance":
            n, mean, variances, components, total = _covariance_fit(X)
        else:
            n, mean, variances, components, total = _dask_ml_fit(X, self.random_state)
        self._check_params_vs_input(n, d)
        self._set_fitted(n, mean, variances, components, total, X.dtype)
        return self

    def _check_params_vs_input(self, n_samples: int, n_features: int) -> None:
        _check_n_samples(n_samples)
        k = self.n_components
        if isinstance(k, Integral) and k > min(n_samples, n_features):
            limit = (f"n_features={n_features}" if n_features <= n_samples
                     else f"n_samples={n_samples}")
            raise ValueError(f"n_components={k} should be <= {limit}.")

    def _set_fitted(self, n: int, mean: np.ndarray, variances: np.ndarray,
                    components: np.ndarray, total: float, dtype: np.dtype) -> None:
        ratios = variances / total if total > 0 else np.zeros_like(variances)
        if self.n_components is None:
            k = variances.shape[0]
        elif isinstance(self.n_components, Integral):
            k = int(self.n_components)
        else:
            # side="right": keep strictly more than the asked fraction (scikit-learn #15669)
            k = int(np.searchsorted(np.cumsum(ratios), self.n_components, side="right")) + 1
            k = min(k, variances.shape[0])
        self.n_samples_ = n
        self.n_components_ = k
        self.mean_ = mean.astype(dtype)
        self.components_ = np.ascontiguousarray(components[:k], dtype=dtype)
        self.explained_variance_ = variances[:k].astype(dtype)
        self.explained_variance_ratio_ = ratios[:k].astype(dtype)
        self.singular_values_ = np.sqrt(variances[:k] * (n - 1)).astype(dtype)
        self.noise_variance_ = dtype.type(variances[k:].mean()) if k < variances.shape[0] else 0.0

    # ----------------------------------------------------------------- transforms
    def transform(self, X: Any) -> np.ndarray | da.Array:
        """Project ``X`` onto the principal axes.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : dask array or ndarray of shape (n_samples, n_components_)
            Lazy for dask input, with ``X``'s row chunks and one column chunk;
            float32 for float32 input.
        """
        check_is_fitted(self)
        X = self._check_input(X, reset=False)
        scale = None
        if self.whiten:
            # as scikit-learn: clip near-zero variances so whitening stays finite
            scale = np.maximum(np.sqrt(self.explained_variance_.astype(np.float64)),
                               np.finfo(self.explained_variance_.dtype).eps)
        if not isinstance(X, da.Array):
            return project(X, self.mean_, self.components_, scale)
        mean = da.from_array(self.mean_, chunks=-1)
        components = da.from_array(self.components_, chunks=-1)
        return da.blockwise(project, "ij", X, "ik", mean, "k", components, "jk",
                            scale=scale, dtype=X.dtype, concatenate=True,
                            meta=np.empty((0, 0), dtype=X.dtype))

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray | da.Array:
        """Fit on ``X``, then project it (lazily for dask input).

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        X_new : dask array or ndarray of shape (n_samples, n_components_)
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray | da.Array:
        """Map projections back to the original space.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_components_)

        Returns
        -------
        X_original : dask array or ndarray of shape (n_samples, n_features)
            With whitening this undoes the whitening too (as scikit-learn does).
        """
        check_is_fitted(self)
        Y = _as_float_2d(X, "X")
        if Y.shape[1] != self.n_components_:
            raise ValueError(f"X has {Y.shape[1]} features, but {type(self).__name__} "
                             f"has n_components_={self.n_components_}.")
        components = self.components_
        if self.whiten:
            components = np.sqrt(self.explained_variance_)[:, None] * components
        if not isinstance(Y, da.Array):
            return reconstruct(Y, components, self.mean_)
        components_d = da.from_array(components, chunks=-1)
        mean = da.from_array(self.mean_, chunks=-1)
        return da.blockwise(reconstruct, "ik", Y, "ij", components_d, "jk", mean, "k",
                            dtype=Y.dtype, concatenate=True, meta=np.empty((0, 0), dtype=Y.dtype))

    # ----------------------------------------------------------------- plumbing
    def _check_input(self, X: Any, *, reset: bool) -> np.ndarray | da.Array:
        """Validate ``X``: numpy through scikit-learn, dask by shape and dtype (lazily)."""
        if not isinstance(X, da.Array):
            return validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        X = _as_float_2d(X, "X")
        if reset:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input.")
        return X

    @property
    def _n_features_out(self) -> int:
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _as_float_2d(X: Any, name: str) -> np.ndarray | da.Array:
    """2-D float32/float64 view of ``X`` (dask arrays get one column chunk); other dtypes -> float64."""
    if not isinstance(X, da.Array):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead: {name}.shape={X.shape}.")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{name} has dtype {X.dtype}; expected real numbers.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if isinstance(X, da.Array) and len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    return X
