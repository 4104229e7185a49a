"""Gaussian mixture models on dask arrays, fit by EM with one map-reduce pass per iteration.

Each EM iteration sends the current parameters (a few k x d numbers) to every
chunk; where the chunk lives, a kernel computes the weighted log-probabilities of
its rows, turns them into responsibilities with a log-sum-exp, and returns the
sufficient statistics of the M-step: per component the sum of responsibilities
``Nk``, ``sum r x``, and ``sum r x**2`` (diag), ``sum r |x|**2`` (spherical) or
``sum r x x^T`` (full), plus the chunk's log-likelihood.  A tree reduction adds
them up (one ``compute`` per iteration) and the M-step runs on the client, with
scikit-learn's formulas: ``reg_covar`` added to the diagonal, the same
parameterisation by Cholesky factors of the precisions, and convergence when the
mean log-likelihood changes by less than ``tol``.

Precision: every kernel works in float64 on rows centred by the data mean, so
the expanded forms ``x^2 p - 2 x m p + m^2 p`` (E-step) and ``E[x^2] - m^2``
(M-step) do not cancel catastrophically on data far from the origin (scikit-learn
evaluates them in the raw coordinates and in the input dtype).  For diag and
spherical models a sub-block of rows becomes one matrix ``Z = [x, x**2]`` and the
whole E-step is one GEMM ``Z @ W`` and the whole M-step one GEMM ``R^T @ Z``.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy.linalg import solve_triangular
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state

from cluster_lib._compat import Interval, StrOptions, validate_params
from cluster_lib._dask_utils import (
    as_dask_2d,
    blocks_by_worker,
    check_fitted_input,
    maybe_persist,
    persist_with,
    row_blocks,
    sum_values,
    tree_reduce,
)

__all__ = [
    "EMStats",
    "GaussianKernel",
    "GaussianMixture",
    "combine_em_stats",
    "em_chunk",
    "init_chunk",
    "m_step",
    "make_kernel",
    "precision_cholesky",
    "rows_chunk",
]

logger = logging.getLogger(__name__)

#: Rows per sub-block in the kernels: Z (float64, rows x 2d, 800 KiB at d=200) stays in a core's L2 cache.
SUBBLOCK_ROWS = 512
#: Lloyd iterations of the k-means that initialises ``init_params="kmeans"``.
KMEANS_INIT_MAX_ITER = 30

_LOG_2PI = math.log(2.0 * math.pi)
_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


# ---------------------------------------------------------------------------
# Per-chunk kernels (numpy in, small statistics out)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GaussianKernel:
    """The current mixture, in the form the chunk kernels evaluate it (float64, centred).

    Attributes
    ----------
    covariance_type : {"diag", "spherical", "full"}
    W : ndarray of shape (2 * d, k) (diag) or (d + 1, k) (spherical); empty for full
        Weighted log-probabilities of a sub-block are ``Z @ W + c``.
    c : ndarray of shape (k,)
        Per-component constant: log weight, log-determinant and the ``m^2 p`` term.
    chol : ndarray of shape (k, d, d); full only
        Cholesky factors of the precisions.
    mchol : ndarray of shape (k, d); full only
        ``means[k] @ chol[k]``.
    """

    covariance_type: str
    W: np.ndarray
    c: np.ndarray
    chol: np.ndarray
    mchol: np.ndarray


def make_kernel(covariance_type: str, weights: np.ndarray, means: np.ndarray,
                precisions_chol: np.ndarray) -> GaussianKernel:
    """Build the kernel form of a mixture whose ``means`` are centred by the data mean."""
    means = np.asarray(means, np.float64)
    pc = np.asarray(precisions_chol, np.float64)
    d = means.shape[1]
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(weights, np.float64))
    empty = np.empty((0, 0))
    if covariance_type == "diag":
        P = pc**2
        W = np.ascontiguousarray(np.vstack([(means * P).T, -0.5 * P.T]))
        c = -0.5 * (d * _LOG_2PI + (means**2 * P).sum(1)) + np.log(pc).sum(1) + log_w
        return GaussianKernel("diag", W, c, empty, empty)
    if covariance_type == "spherical":
        P = pc**2
        W = np.ascontiguousarray(np.vstack([(means * P[:, None]).T, -0.5 * P[None, :]]))
        c = -0.5 * (d * _LOG_2PI + P * (means**2).sum(1)) + d * np.log(pc) + log_w
        return GaussianKernel("spherical", W, c, empty, empty)
    logdet = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(1)
    mchol = np.einsum("kd,kde->ke", means, pc)
    c = -0.5 * d * _LOG_2PI + logdet + log_w
    return GaussianKernel("full", empty, c, np.ascontiguousarray(pc), mchol)


@dataclass
class EMStats:
    """Sufficient statistics of one EM iteration over some rows (centred coordinates).

    Attributes
    ----------
    nk : ndarray of shape (k,)
        Sum of the responsibilities of each component.
    s1 : ndarray of shape (k, d)
        ``sum_i r_ik x_i``.
    s2 : ndarray of shape (k, d) (diag), (k,) (spherical) or (k, d, d) (full)
        ``sum_i r_ik x_i**2``, ``sum_i r_ik |x_i|**2`` or ``sum_i r_ik x_i x_i^T``.
    loglik : float
        Sum of the rows' log-likelihoods under the parameters of the E-step.
    n : int
        Number of rows.
    """

    nk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    loglik: float
    n: int


def _zero_stats(covariance_type: str, k: int, d: int) -> EMStats:
    s2 = {"diag": (k, d), "spherical": (k,), "full": (k, d, d)}[covariance_type]
    return EMStats(np.zeros(k), np.zeros((k, d)), np.zeros(s2), 0.0, 0)


def _subblocks(X: np.ndarray, mean: np.ndarray, covariance_type: str):
    """Yield (start, stop, Xc, Z) per cache-sized sub-block of rows, in float64.

    ``Xc`` is the centred rows; ``Z`` is ``[Xc, Xc**2]`` (diag), ``[Xc, |Xc|**2]``
    (spherical) or ``Xc`` itself (full). The buffers are reused between steps.
    """
    n, d = X.shape
    sb = min(SUBBLOCK_ROWS, max(n, 1))
    width = {"diag": 2 * d, "spherical": d + 1, "full": d}[covariance_type]
    Z = np.empty((sb, width), np.float64)
    for s in range(0, n, sb):
        e = min(s + sb, n)
        Zb = Z[: e - s]
        Xc = Zb[:, :d]
        np.subtract(X[s:e], mean, out=Xc)
        if covariance_type == "diag":
            np.square(Xc, out=Zb[:, d:])
        elif covariance_type == "spherical":
            np.einsum("ij,ij->i", Xc, Xc, out=Zb[:, d])
        yield s, e, Xc, Zb


def _weighted_log_prob(Xc: np.ndarray, Z: np.ndarray, kern: GaussianKernel) -> np.ndarray:
    """log w_k + log N(x | m_k, S_k) for every row of a sub-block, shape (b, k), float64."""
    if kern.covariance_type != "full":
        L = Z @ kern.W
        L += kern.c
        return L
    k = kern.c.shape[0]
    L = np.empty((Xc.shape[0], k), np.float64)
    for j in range(k):
        Y = Xc @ kern.chol[j]
        Y -= kern.mchol[j]
        L[:, j] = np.einsum("ij,ij->i", Y, Y)
    L *= -0.5
    L += kern.c
    return L


def _normalize_inplace(L: np.ndarray) -> np.ndarray:
    """Turn weighted log-probabilities (b, k) into responsibilities in place; return log p(x) (b,)."""
    mx = L.max(axis=1)
    L -= mx[:, None]
    np.exp(L, out=L)
    s = L.sum(axis=1)
    L /= s[:, None]
    return mx + np.log(s)


def _accumulate(stats: EMStats, R: np.ndarray, Xc: np.ndarray, Z: np.ndarray, covariance_type: str) -> None:
    """Add a sub-block's responsibility-weighted sums to ``stats``."""
    d = Xc.shape[1]
    stats.nk += R.sum(axis=0)
    stats.n += R.shape[0]
    if covariance_type == "full":
        stats.s1 += (Xc.T @ R).T
        for j in range(R.shape[1]):
            Y = Xc * np.sqrt(R[:, j])[:, None]
            stats.s2[j] += Y.T @ Y  # numpy runs A.T @ A as a symmetric rank-k update
        return
    SZ = (Z.T @ R).T  # measured ~25% faster than R.T @ Z for a short, wide R (OpenBLAS, d=200, k=10)
    stats.s1 += SZ[:, :d]
    if covariance_type == "diag":
        stats.s2 += SZ[:, d:]
    else:
        stats.s2 += SZ[:, d]


def em_chunk(X: np.ndarray, kern: GaussianKernel, mean: np.ndarray) -> EMStats:
    """E-step over one chunk, returning the M-step's sufficient statistics and the log-likelihood.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Rows of the chunk (any float dtype; computed in float64).
    kern : GaussianKernel
        The current mixture, built from means centred by ``mean``.
    mean : ndarray of shape (d,)
        The data mean subtracted from every row.

    Returns
    -------
    EMStats
    """
    k, d = kern.c.shape[0], X.shape[1]
    stats = _zero_stats(kern.covariance_type, k, d)
    loglik = 0.0
    for _, _, Xc, Z in _subblocks(X, mean, kern.covariance_type):
        L = _weighted_log_prob(Xc, Z, kern)
        loglik += float(_normalize_inplace(L).sum())
        _accumulate(stats, L, Xc, Z, kern.covariance_type)
    stats.loglik = loglik
    return stats


def init_chunk(X: np.ndarray, mean: np.ndarray, covariance_type: str, k: int,
               centers: np.ndarray | None, seed: int) -> EMStats:
    """Sufficient statistics of an initial set of responsibilities over one chunk.

    With ``centers`` (centred, (k, d)) every row belongs wholly to its nearest center
    (one-hot responsibilities); without, responsibilities are uniform random numbers
    normalised per row, as scikit-learn's ``init_params="random"``, drawn from ``seed``.
    """
    stats = _zero_stats(covariance_type, k, X.shape[1])
    rng = np.random.default_rng(seed)
    if centers is not None:
        C = np.asarray(centers, np.float64)
        half_c2 = 0.5 * np.einsum("ij,ij->i", C, C)
    for s, e, Xc, Z in _subblocks(X, mean, covariance_type):
        b = e - s
        if centers is not None:
            R = np.zeros((b, k))
            R[np.arange(b), np.argmin(half_c2 - Xc @ C.T, axis=1)] = 1.0
        else:
            R = rng.uniform(size=(b, k))
            R /= R.sum(axis=1, keepdims=True)
        _accumulate(stats, R, Xc, Z, covariance_type)
    return stats


def combine_em_stats(parts: list[EMStats]) -> EMStats:
    """Add up the statistics of several chunks (a node of the tree reduction)."""
    first = parts[0]
    out = EMStats(first.nk.copy(), first.s1.copy(), first.s2.copy(), first.loglik, first.n)
    for p in parts[1:]:
        out.nk += p.nk
        out.s1 += p.s1
        out.s2 += p.s2
        out.loglik += p.loglik
        out.n += p.n
    return out


def _em_group(blocks: list[np.ndarray], kern: GaussianKernel, mean: np.ndarray) -> EMStats:
    """The statistics of several chunks that live on one worker, in one task."""
    return combine_em_stats([em_chunk(b, kern, mean) for b in blocks])


def rows_chunk(X: np.ndarray, kern: GaussianKernel, mean: np.ndarray, what: str, dtype: Any) -> Any:
    """Per-row results of one chunk: ``"labels"``, ``"proba"``, ``"score_samples"`` or ``"loglik"`` (a sum)."""
    n, k = X.shape[0], kern.c.shape[0]
    if what == "labels":
        out = np.empty(n, np.int32)
    elif what == "proba":
        out = np.empty((n, k), dtype)
    else:
        out = np.empty(n, np.float64)
    for s, e, Xc, Z in _subblocks(X, mean, kern.covariance_type):
        L = _weighted_log_prob(Xc, Z, kern)
        if what == "labels":
            out[s:e] = L.argmax(axis=1)
        elif what == "proba":
            _normalize_inplace(L)
            out[s:e] = L
        else:
            out[s:e] = _normalize_inplace(L)
    if what == "loglik":
        return float(out.sum())
    return out if what != "score_samples" else out.astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# M-step and parameter conversions (client side, float64, centred coordinates)
# ---------------------------------------------------------------------------
def m_step(stats: EMStats, covariance_type: str, reg_covar: float, eps: float,
           n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's M-step from sufficient statistics.

    ``Nk`` gets ``eps`` (10 machine epsilons of the input dtype, as scikit-learn) so
    that an empty component does not divide by zero. Weights are ``Nk / sum(Nk)``,
    or ``Nk / n_samples`` when given (scikit-learn's initialisation step).

    Returns
    -------
    weights, means (centred), covariances, precisions_cholesky
    """
    nk = stats.nk + eps
    means = stats.s1 / nk[:, None]
    if covariance_type == "diag":
        # a variance is never negative: clipping removes only rounding noise of E[x^2] - m^2
        cov = np.maximum(stats.s2 / nk[:, None] - means**2, 0.0) + reg_covar
    elif covariance_type == "spherical":
        d = means.shape[1]
        cov = np.maximum(stats.s2 / nk - (means**2).sum(1), 0.0) / d + reg_covar
    else:
        cov = stats.s2 / nk[:, None, None] - np.einsum("ki,kj->kij", means, means)
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        idx = np.arange(means.shape[1])
        cov[:, idx, idx] += reg_covar
    weights = nk / (n_samples if n_samples is not None else nk.sum())
    return weights, means, cov, precision_cholesky(cov, covariance_type)


def precision_cholesky(cov: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precisions (scikit-learn's parameterisation) from covariances."""
    if covariance_type != "full":
        if not np.all(cov > 0.0):
            raise ValueError(_ILL_DEFINED)
        return 1.0 / np.sqrt(cov)
    d = cov.shape[1]
    out = np.empty_like(cov)
    for j in range(cov.shape[0]):
        try:
            chol = np.linalg.cholesky(cov[j])
        except np.linalg.LinAlgError:
            raise ValueError(_ILL_DEFINED) from None
        out[j] = solve_triangular(chol, np.eye(d), lower=True).T
    return out


def _from_precisions(precisions: np.ndarray, covariance_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(covariances, precisions_cholesky) from user-given precisions (upper-triangular factors, as scikit-learn)."""
    P = np.asarray(precisions, np.float64)
    if covariance_type != "full":
        return 1.0 / P, np.sqrt(P)
    chol = np.stack([np.linalg.cholesky(p[::-1, ::-1])[::-1, ::-1] for p in P])
    return np.linalg.inv(P), chol


def _precisions(pc: np.ndarray, covariance_type: str) -> np.ndarray:
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", pc, pc)
    return pc**2


def _n_parameters(covariance_type: str, k: int, d: int) -> int:
    cov = {"full": k * d * (d + 1) / 2.0, "diag": k * d, "spherical": k}[covariance_type]
    return int(cov + k * d + k - 1)


# ---------------------------------------------------------------------------
# Checks of user-given initial parameters (scikit-learn's messages)
# ---------------------------------------------------------------------------
def _check_shape(arr: np.ndarray, shape: tuple, name: str) -> None:
    if arr.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape}.")


def _check_weights_init(w: Any, k: int) -> np.ndarray:
    w = check_array(w, dtype=[np.float64, np.float32], ensure_2d=False, input_name="weights_init")
    _check_shape(w, (k,), "weights_init")
    if np.any(w < 0.0) or np.any(w > 1.0):
        raise ValueError(
            "The parameter 'weights_init' should be in the range [0, 1], but got "
            f"max value {w.max():.5f}, min value {w.min():.5f}."
        )
    atol = 1e-6 if w.dtype == np.float32 else 1e-8
    if not abs(1.0 - float(np.sum(w))) <= atol:
        raise ValueError(f"The parameter 'weights_init' should be normalized, but got sum(weights_init) = {np.sum(w):.5f}.")
    return w.astype(np.float64)


def _check_means_init(m: Any, k: int, d: int) -> np.ndarray:
    m = check_array(m, dtype=[np.float64, np.float32], ensure_2d=False, input_name="means_init")
    _check_shape(m, (k, d), "means_init")
    return m.astype(np.float64)


def _check_precisions_init(p: Any, covariance_type: str, k: int, d: int) -> np.ndarray:
    p = check_array(p, dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=covariance_type == "full",
                    input_name="precisions_init")
    shape = {"full": (k, d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]
    _check_shape(p, shape, "precisions_init")
    p = p.astype(np.float64)
    if covariance_type == "full":
        for j in range(k):
            if not (np.allclose(p[j], p[j].T) and np.all(np.linalg.eigvalsh(p[j]) > 0.0)):
                raise ValueError(
                    f"The parameter 'precisions_init' should hold symmetric, positive-definite "
                    f"'full' precision matrices, but precisions_init[{j}] is not."
                )
    elif np.any(p <= 0.0):
        raise ValueError(
            f"The parameter 'precisions_init' ('{covariance_type}' precisions) should be positive, "
            f"but got min value {p.min():.5g}."
        )
    return p


# ---------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------
class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture model fit by EM on a dask array, one map-reduce pass per iteration.

    The scikit-learn API and results (``sklearn.mixture.GaussianMixture``, with
    ``n_init=1``) on dask arrays that need not fit in one process; numpy input
    gives numpy results.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"diag", "spherical", "full"}, default="diag"
        ``"diag"``: one variance per component and feature (the default here, unlike
        scikit-learn's ``"full"``: descriptors have hundreds of dimensions).
    tol : float, default=1e-3
        EM stops when the mean log-likelihood per row (the lower bound) changes by
        less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
        EM iterations; 0 keeps the initial parameters.
    init_params : {"kmeans", "k-means++", "random"}, default="kmeans"
        Initial responsibilities, turned into parameters by one M-step pass:
        ``"kmeans"``: hard assignment to the centers of :class:`cluster_lib.KMeans`
        (``KMEANS_INIT_MAX_ITER`` Lloyd iterations); ``"k-means++"``: hard assignment
        to k-means++ centers drawn from a sample (scikit-learn starts from the seeds
        alone, with ``reg_covar`` variances, and reaches this state after its first
        iteration); ``"random"``: uniform random responsibilities.
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        Shape (n_components,) (spherical), (n_components, n_features) (diag) or
        (n_components, n_features, n_features) (full). Given parameters replace the
        initialised ones; with all three no initialisation pass runs.
    random_state : int, RandomState instance or None, default=None
    persist : bool or "auto", default="auto"
        Keep X in the workers' memory between passes: always, never (stream it from
        its source on every pass), or when it takes under half their memory.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shapes as in scikit-learn for ``covariance_type``.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per row at the last E-step.
    lower_bounds_ : list of float
        The lower bound after every iteration.
    labels_ : dask array (numpy array for numpy input) of shape (n_samples,), int32
        Most probable component of every training row under the fitted model.
    n_features_in_ : int
    iteration_seconds_ : list of float
        Wall time of every EM iteration (one pass each).
    timings_ : dict
        Seconds spent on "prepare", "init", "em" and "total".

    Examples
    --------
    >>> import dask.array as da
    >>> X = da.random.RandomState(0).normal(size=(10_000, 8), chunks=2_500)
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> gm.means_.shape, gm.covariances_.shape
    ((2, 8), (2, 8))
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"diag", "spherical", "full"})],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "k-means++", "random"})],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "persist": ["boolean", StrOptions({"auto"})],
    }

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "diag",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        persist: bool | str = "auto",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.persist = persist

    # -- fitting -----------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Estimate the mixture's parameters with EM.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : GaussianMixture
        """
        t0 = time.perf_counter()
        validate_params(self)
        X, was_numpy = as_dask_2d(X)
        n, d = X.shape
        k = self.n_components
        if n < 2:
            raise ValueError(f"Found array with {n} sample(s) (shape={X.shape}) while a minimum of 2 is "
                             "required by GaussianMixture.")
        if n < k:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {k}, n_samples = {n}")
        given = self._check_init_params(d)
        random_state = check_random_state(self.random_state)
        X, _ = maybe_persist(X, self.persist)
        mean = np.asarray(X.mean(axis=0, dtype=np.float64).compute())
        eps = 10 * float(np.finfo(X.dtype).eps)
        self.timings_ = {"prepare": time.perf_counter() - t0}

        t = time.perf_counter()
        weights, means, cov, pc = self._initialize(X, mean, eps, given, random_state)
        self.timings_["init"] = time.perf_counter() - t

        t = time.perf_counter()
        blocks = row_blocks(X)
        groups = blocks_by_worker(X) or [[i] for i in range(len(blocks))]
        lower_bound, self.lower_bounds_, self.iteration_seconds_ = -np.inf, [], []
        self.converged_, self.n_iter_ = False, 0
        for n_iter in range(1, self.max_iter + 1):
            ti = time.perf_counter()
            prev = lower_bound
            stats = _em_pass(blocks, groups, make_kernel(self.covariance_type, weights, means, pc), mean)
            lower_bound = stats.loglik / n
            weights, means, cov, pc = m_step(stats, self.covariance_type, self.reg_covar, eps)
            change = lower_bound - prev
            self.lower_bounds_.append(lower_bound)
            self.iteration_seconds_.append(time.perf_counter() - ti)
            self.n_iter_ = n_iter
            logger.info("iteration %d: lower bound %.8g, change %.3g (tol %.3g), %.3f s",
                        n_iter, lower_bound, change, self.tol, self.iteration_seconds_[-1])
            if abs(change) < self.tol:
                self.converged_ = True
                break
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"GaussianMixture did not converge in max_iter={self.max_iter} iterations; increase "
                "max_iter or tol, try different init parameters, or check for degenerate data.",
                ConvergenceWarning, stacklevel=2,
            )
        self.timings_["em"] = time.perf_counter() - t
        self.lower_bound_ = float(lower_bound)
        self._set_fitted(X.dtype, d, mean, weights, means, cov, pc)
        labels = self._per_row(X, "labels")
        if was_numpy:
            labels = np.asarray(labels.compute())
        else:
            labels, _ = persist_with(labels)
        self.labels_ = labels
        self.timings_["total"] = time.perf_counter() - t0
        return self

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Fit, then return ``labels_``: the most probable component of every row of X."""
        return self.fit(X).labels_

    def _check_init_params(self, d: int) -> dict[str, np.ndarray]:
        k, given = self.n_components, {}
        if self.weights_init is not None:
            given["weights"] = _check_weights_init(self.weights_init, k)
        if self.means_init is not None:
            given["means"] = _check_means_init(self.means_init, k, d)
        if self.precisions_init is not None:
            given["precisions"] = _check_precisions_init(self.precisions_init, self.covariance_type, k, d)
        return given

    def _initialize(self, X: da.Array, mean: np.ndarray, eps: float, given: dict, random_state) -> tuple:
        """Initial (weights, centred means, covariances, precisions_cholesky), float64."""
        if len(given) < 3:
            stats = _init_pass(X, self._init_centers(X, mean, random_state), mean, self.covariance_type,
                               self.n_components, random_state)
            weights, means, cov, pc = m_step(stats, self.covariance_type, self.reg_covar, eps,
                                             n_samples=X.shape[0])
        if "weights" in given:
            weights = given["weights"]
        if "means" in given:
            means = given["means"] - mean
        if "precisions" in given:
            cov, pc = _from_precisions(given["precisions"], self.covariance_type)
        return weights, means, cov, pc

    def _init_centers(self, X: da.Array, mean: np.ndarray, random_state) -> np.ndarray | None:
        """Centred centers whose hard assignment initialises the mixture, or None for random responsibilities."""
        from cluster_lib._kmeans import KMeans, kmeans_init

        if self.init_params == "random":
            return None
        if self.init_params == "k-means++":
            return kmeans_init(X, self.n_components, init="k-means++", mean=mean, random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a few Lloyd iterations are enough to start EM
            km = KMeans(self.n_components, random_state=random_state, max_iter=KMEANS_INIT_MAX_ITER,
                        persist=False).fit(X)
        return km.cluster_centers_.astype(np.float64) - mean

    def _set_fitted(self, dtype, d, mean, weights, means, cov, pc) -> None:
        self._mean = mean
        self.n_features_in_ = d
        self.weights_ = weights.astype(dtype)
        self.means_ = (means + mean).astype(dtype)
        self.covariances_ = cov.astype(dtype)
        self.precisions_cholesky_ = pc.astype(dtype)
        self.precisions_ = _precisions(pc, self.covariance_type).astype(dtype)

    # -- using the fitted model --------------------------------------------
    def _kernel(self) -> GaussianKernel:
        means = np.asarray(self.means_, np.float64) - self._mean
        return make_kernel(self.covariance_type, self.weights_, means, self.precisions_cholesky_)

    def _check_input(self, X: Any) -> tuple[da.Array, bool]:
        return check_fitted_input(self, X, "means_")

    def _per_row(self, X: da.Array, what: str) -> da.Array:
        """A lazy dask array of per-row results, one task per chunk; the model ships once."""
        kern = dask.delayed(self._kernel(), pure=True)
        mean = dask.delayed(self._mean, pure=True)
        dtype = X.dtype
        parts = []
        for b, nb in zip(row_blocks(X), X.chunks[0]):
            out = dask.delayed(rows_chunk, pure=True)(b, kern, mean, what, dtype)
            if what == "labels":
                parts.append(da.from_delayed(out, shape=(nb,), dtype=np.int32))
            elif what == "proba":
                parts.append(da.from_delayed(out, shape=(nb, self.n_components), dtype=dtype))
            else:
                parts.append(da.from_delayed(out, shape=(nb,), dtype=dtype))
        return da.concatenate(parts)

    def predict(self, X: Any) -> Any:
        """Most probable component of every row (int32; a lazy dask array for dask input)."""
        X, was_numpy = self._check_input(X)
        out = self._per_row(X, "labels")
        return np.asarray(out.compute()) if was_numpy else out

    def predict_proba(self, X: Any) -> Any:
        """Posterior probability of every component for every row, shape (n_samples, n_components)."""
        X, was_numpy = self._check_input(X)
        out = self._per_row(X, "proba")
        return np.asarray(out.compute()) if was_numpy else out

    def score_samples(self, X: Any) -> Any:
        """Log-likelihood of every row under the model, shape (n_samples,)."""
        X, was_numpy = self._check_input(X)
        out = self._per_row(X, "score_samples")
        return np.asarray(out.compute()) if was_numpy else out

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per row of X (summed in float64 chunk by chunk, one pass)."""
        X, _ = self._check_input(X)
        return self._total_loglik(X) / X.shape[0]

    def _total_loglik(self, X: da.Array) -> float:
        kern = dask.delayed(self._kernel(), pure=True)
        mean = dask.delayed(self._mean, pure=True)
        sums = [dask.delayed(rows_chunk, pure=True)(b, kern, mean, "loglik", X.dtype) for b in row_blocks(X)]
        return float(dask.compute(tree_reduce(sums, sum_values))[0])

    def _n_parameters(self) -> int:
        """Number of free parameters of the model."""
        k, d = self.means_.shape
        return _n_parameters(self.covariance_type, k, d)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion of the model on X (lower is better): ``-2 log L + p log n``."""
        X, _ = self._check_input(X)
        n = X.shape[0]
        return -2.0 * self._total_loglik(X) + self._n_parameters() * math.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion of the model on X (lower is better): ``-2 log L + 2 p``."""
        X, _ = self._check_input(X)
        return -2.0 * self._total_loglik(X) + 2 * self._n_parameters()


def _em_pass(blocks: list[Any], groups: list[list[int]], kern: GaussianKernel, mean: np.ndarray) -> EMStats:
    """One E-step over every chunk: the summed statistics, in one ``compute``."""
    K = dask.delayed(kern, pure=True)
    mu = dask.delayed(mean, pure=True)
    parts = [dask.delayed(_em_group, pure=True)([blocks[i] for i in g], K, mu) for g in groups]
    if len(parts) <= 16:
        # a few per-worker results: adding them here saves the reduction's extra task hop
        return combine_em_stats(list(dask.compute(*parts)))
    (stats,) = dask.compute(tree_reduce(parts, combine_em_stats))
    return stats


def _init_pass(X: da.Array, centers: np.ndarray | None, mean: np.ndarray, covariance_type: str, k: int,
               random_state) -> EMStats:
    """Statistics of the initial responsibilities (hard assignment to ``centers``, or random)."""
    blocks = row_blocks(X)
    seeds = random_state.randint(2**31 - 1, size=len(blocks))
    C = dask.delayed(centers, pure=True)
    mu = dask.delayed(mean, pure=True)
    parts = [dask.delayed(init_chunk, pure=True)(b, mu, covariance_type, k, C, int(s))
             for b, s in zip(blocks, seeds)]
    (stats,) = dask.compute(tree_reduce(parts, combine_em_stats))
    return stats
