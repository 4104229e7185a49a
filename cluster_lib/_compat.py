"""Every use of another library's private or version-dependent API, in one place.

Each section names the library and why the private name is needed, so that a
change upstream breaks one file and one test, not the estimators.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# scikit-learn: parameter-constraint objects. scikit-learn declares estimator
# parameters as data (``_parameter_constraints``) and validates them in
# ``BaseEstimator._validate_params``; the constraint classes are not public.
# ---------------------------------------------------------------------------
from sklearn.utils._param_validation import Interval, StrOptions  # noqa: F401


def validate_params(estimator) -> None:
    """Check ``estimator``'s parameters against its ``_parameter_constraints``.

    Raises scikit-learn's ``InvalidParameterError`` (a ``ValueError`` and
    ``TypeError``), whose message names the parameter, the allowed values and the
    value given.
    """
    estimator._validate_params()


# ---------------------------------------------------------------------------
# scikit-learn: input validation and one more constraint class.
# Used by: cluster_lib/_pca.py, cluster_lib/_preprocess.py (PCA section).
# ``RealNotInt`` lets ``n_components`` accept a float fraction but not an int in
# the same interval (as scikit-learn's own PCA declares it). ``validate_data``
# is public since scikit-learn 1.6; older versions only have the private method.
# ---------------------------------------------------------------------------
from sklearn.utils._param_validation import RealNotInt  # noqa: E402, F401

try:
    from sklearn.utils.validation import validate_data  # noqa: F401
except ImportError:  # pragma: no cover - scikit-learn < 1.6

    def validate_data(_estimator, /, X, **kwargs):
        """Fallback to the private method that scikit-learn < 1.6 used."""
        return _estimator._validate_data(X, **kwargs)


# (end of the PCA section)


# ---------------------------------------------------------------------------
# dask-ml 2025.1.0 KMeans, with its defects under current scikit-learn/numpy:
# * ``init="k-means++"`` calls scikit-learn's private ``_kmeans_plusplus`` without
#   the ``sample_weight`` argument it now requires (TypeError);
# * ``inertia_`` is a sum of distances, not squared distances, whenever the last
#   center shift exceeds 1e-7 (it recomputes labels with pairwise_distances_argmin_min);
# * no ``sample_weight``.
# Used by: cluster_lib/_kmeans.py (engine="dask-ml"). The wrapper passes
# k-means++/random initial centers computed by cluster_lib, and the caller
# recomputes labels and the true inertia with its own final pass.
# ---------------------------------------------------------------------------
def fit_dask_ml_kmeans(est, X, mean, random_state):
    """Fit ``dask_ml.cluster.KMeans`` with the parameters of ``est`` (a cluster_lib KMeans).

    Parameters
    ----------
    est : cluster_lib.KMeans
        Supplies n_clusters, init, max_iter, tol, oversampling_factor, init_max_iter;
        receives ``n_iter_``.
    X : dask array of shape (n_samples, n_features)
    mean : ndarray of shape (n_features,)
        Data mean, for the centred initial centers of cluster_lib's k-means++.
    random_state : numpy RandomState

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64, not centred
    """
    import numpy as np
    from dask_ml.cluster import KMeans as DaskMLKMeans

    from cluster_lib._kmeans import kmeans_init

    init = est.init
    if isinstance(init, str) and init in ("k-means++", "random"):
        init = kmeans_init(
            X, est.n_clusters, init=init, mean=mean, random_state=random_state,
            sample_size=est.init_sample_size,
        ) + mean
    km = DaskMLKMeans(
        n_clusters=est.n_clusters,
        init=init,
        oversampling_factor=est.oversampling_factor,
        max_iter=est.max_iter,
        tol=est.tol,
        random_state=random_state.randint(2**31 - 1),
        init_max_iter=est.init_max_iter,
    )
    km.fit(X)
    est.n_iter_ = int(km.n_iter_)
    return np.asarray(km.cluster_centers_, dtype=np.float64)
