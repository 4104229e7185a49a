"""Preprocessing before clustering: row-wise L2 normalisation and the PCA-then-normalise step.

Cosine methods run on unit vectors: for rows on the unit sphere,
``||a - b||^2 = 2 - 2 cos(a, b)``, so euclidean k-means or DBSCAN on normalised
rows is spherical k-means or cosine DBSCAN.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from cluster_lib._compat import Interval, StrOptions, validate_data, validate_params
from cluster_lib._pca import PCA, _as_float_2d

__all__ = ["l2_normalize", "L2Normalizer", "Preprocessor"]


def _l2_normalize_block(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` divided by their L2 norms; zero rows stay zero.

    Assumes ``X`` is a 2-D float32 or float64 array; the result has its dtype.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)

    Returns
    -------
    ndarray of shape (n_rows, n_features)
    """
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    norms[norms == 0] = 1.0
    return X / norms[:, None]


def l2_normalize(X: Any) -> np.ndarray | da.Array:
    """Scale every row of ``X`` to unit L2 norm (lazily for dask input).

    Parameters
    ----------
    X : dask array or array-like of shape (n_samples, n_features)
        Float32 stays float32; other numeric dtypes become float64.

    Returns
    -------
    X_normalized : dask array or ndarray of shape (n_samples, n_features)
        Same type and row chunks as ``X`` (a dask array gets one column chunk,
        since a row's norm needs all its columns). Rows of zeros stay zeros.

    Examples
    --------
    >>> import numpy as np
    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    X = _as_float_2d(X, "X")
    if isinstance(X, da.Array):
        return X.map_blocks(_l2_normalize_block, dtype=X.dtype)
    return _l2_normalize_block(X)


class L2Normalizer(TransformerMixin, BaseEstimator):
    """Stateless transformer wrapping :func:`l2_normalize`, for pipelines.

    Like ``sklearn.preprocessing.Normalizer(norm="l2")``, but keeps dask arrays
    lazy and dask.

    Attributes
    ----------
    n_features_in_ : int
    """

    _parameter_constraints: dict = {}

    def fit(self, X: Any, y: Any = None) -> L2Normalizer:
        """Record the number of features; nothing is learned.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : L2Normalizer
        """
        self._check_input(X, reset=True)
        return self

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """Scale every row of ``X`` to unit L2 norm.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)

        Returns
        -------
        X_normalized : dask array or ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        return l2_normalize(self._check_input(X, reset=False))

    def _check_input(self, X: Any, *, reset: bool) -> np.ndarray | da.Array:
        if not isinstance(X, da.Array):
            return validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        X = _as_float_2d(X, "X")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input.")
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class Preprocessor(TransformerMixin, BaseEstimator):
    """The job spec's ``preprocess`` step: PCA to at most ``pca`` dims, then L2 normalisation, each optional.

    Parameters
    ----------
    pca : int or None, default=None
        Reduce to ``min(pca, n_features, n_samples)`` principal components;
        ``None`` skips PCA. A descriptor already narrower than ``pca`` is still
        centred and rotated, so every descriptor goes through the same steps.
    normalize : bool, default=False
        Scale each (reduced) row to unit L2 norm, for cosine methods.
    solver : {"covariance", "dask-ml"}, default="covariance"
        Passed to :class:`PCA`.
    random_state : int, RandomState instance or None, default=None
        Passed to :class:`PCA`.

    Attributes
    ----------
    pca_ : PCA or None
        The fitted PCA, if any.
    n_features_in_ : int
    """

    _parameter_constraints: dict = {
        "pca": [Interval(Integral, 1, None, closed="left"), None],
        "normalize": ["boolean"],
        "solver": [StrOptions({"covariance", "dask-ml"})],
        "random_state": ["random_state"],
    }

    def __init__(self, pca: int | None = None, normalize: bool = False, *,
                 solver: str = "covariance", random_state: Any = None) -> None:
        self.pca = pca
        self.normalize = normalize
        self.solver = solver
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> Preprocessor:
        """Fit the PCA (if any) on ``X``.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : Preprocessor
        """
        validate_params(self)
        X = _as_float_2d(X, "X") if isinstance(X, da.Array) else validate_data(
            self, X, dtype=[np.float64, np.float32], reset=True)
        self.n_features_in_ = X.shape[1]
        self.pca_ = None
        if self.pca is not None:
            k = min(self.pca, X.shape[1])
            if not np.isnan(X.shape[0]):
                k = min(k, X.shape[0])
            self.pca_ = PCA(k, solver=self.solver, random_state=self.random_state).fit(X)
        return self

    def transform(self, X: Any) -> np.ndarray | da.Array:
        """Reduce and/or normalise ``X`` (lazily for dask input).

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : dask array or ndarray of shape (n_samples, n_output_features)
            ``n_output_features`` is ``pca_.n_components_`` with PCA, else ``n_features``.
        """
        check_is_fitted(self, "n_features_in_")
        if self.pca_ is not None:
            X = self.pca_.transform(X)
        else:
            X = _as_float_2d(X, "X") if isinstance(X, da.Array) else validate_data(
                self, X, dtype=[np.float64, np.float32], reset=False)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                                 f"is expecting {self.n_features_in_} features as input.")
        return l2_normalize(X) if self.normalize else X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
