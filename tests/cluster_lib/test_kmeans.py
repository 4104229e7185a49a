"""cluster_lib.KMeans against scikit-learn's KMeans on the same data."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from cluster_lib import KMeans


def match_centers(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between matched centers of a and b (label-permutation invariant)."""
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(cost[r, c].max()))


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(6000, n_features=12, centers=7, cluster_std=1.5, random_state=3)
    return X + 40.0, y  # far from the origin, to exercise centring


CHUNKS = {"one-chunk": 6000, "uneven": (2500, 1, 1499, 2000)}


@pytest.fixture(params=["sync", "threads", "distributed"])
def scheduler(request):
    if request.param == "distributed":
        client = request.getfixturevalue("client")
        yield client
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("chunks", list(CHUNKS.values()), ids=list(CHUNKS))
def test_matches_sklearn_from_the_same_init(blobs, dtype, chunks, scheduler):
    X, _ = blobs
    X = X.astype(dtype)
    init = X[np.random.default_rng(0).choice(len(X), 7, replace=False)]
    sk = SkKMeans(7, init=init, n_init=1, tol=1e-4, algorithm="lloyd").fit(X)
    Xd = da.from_array(X, chunks=(chunks, -1))
    km = KMeans(7, init=init, tol=1e-4).fit(Xd)
    assert km.cluster_centers_.dtype == dtype
    assert match_centers(km.cluster_centers_, sk.cluster_centers_) < 1e-3
    assert adjusted_rand_score(km.labels_.compute(), sk.labels_) == 1.0
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=1e-5)
    assert abs(km.n_iter_ - sk.n_iter_) <= 1


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
def test_inits_recover_the_blobs(blobs, init):
    X, y = blobs
    Xd = da.from_array(X.astype(np.float32), chunks=1000)
    km = KMeans(7, init=init, random_state=0, max_iter=100).fit(Xd)
    assert km.cluster_centers_.shape == (7, 12)
    assert len(np.unique(km.cluster_centers_, axis=0)) == 7
    if init != "random":  # random init may merge two blobs; the others must not
        assert adjusted_rand_score(y, km.labels_.compute()) > 0.99
        sk = SkKMeans(7, n_init=1, random_state=0).fit(X)
        assert km.inertia_ <= 1.01 * sk.inertia_


def test_k_means_parallel_returns_k_distinct_centers_on_many_clusters():
    X, _ = make_blobs(20000, n_features=8, centers=60, random_state=1)
    with pytest.warns(ConvergenceWarning):
        km = KMeans(60, init="k-means||", random_state=0, max_iter=1).fit(da.from_array(X, chunks=4000))
    assert len(np.unique(km.cluster_centers_, axis=0)) == 60


def test_inertia_is_the_true_sum_of_squared_distances(blobs):
    X, _ = blobs
    km = KMeans(7, random_state=1, max_iter=2).fit(da.from_array(X, chunks=1500))
    labels = km.labels_.compute()
    true = ((X - km.cluster_centers_[labels]) ** 2).sum()
    assert km.inertia_ == pytest.approx(true, rel=1e-5)


def test_sample_weight_equals_repeated_rows(blobs):
    X, _ = blobs
    X = X[:900]
    w = np.random.default_rng(0).integers(1, 4, len(X))
    init = X[:5]
    a = KMeans(5, init=init).fit(da.from_array(X, chunks=200), sample_weight=w)
    b = KMeans(5, init=init).fit(da.from_array(np.repeat(X, w, axis=0), chunks=300))
    sk = SkKMeans(5, init=init, n_init=1).fit(X, sample_weight=w)
    # the kernels compute in float32 whatever the input dtype: agreement to float32 precision
    assert match_centers(a.cluster_centers_, b.cluster_centers_) < 1e-4
    assert match_centers(a.cluster_centers_, sk.cluster_centers_) < 1e-4
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-5)
    assert a.inertia_ == pytest.approx(sk.inertia_, rel=1e-5)


def test_empty_cluster_is_reseeded(blobs):
    X, _ = blobs
    init = X[:7].copy()
    init[3] = 1e4  # no row is nearest to this center
    km = KMeans(7, init=init, max_iter=100).fit(da.from_array(X, chunks=1000))
    sizes = np.bincount(km.labels_.compute(), minlength=7)
    assert (sizes > 0).all()
    assert np.abs(km.cluster_centers_).max() < 1e3


def test_numpy_in_numpy_out(blobs):
    X, y = blobs
    km = KMeans(7, random_state=0).fit(X)
    assert isinstance(km.labels_, np.ndarray) and km.labels_.dtype == np.int32
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert km.transform(X[:3]).shape == (3, 7)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-6)


def test_predict_transform_and_score_match_sklearn_for_the_same_centers(blobs):
    X, _ = blobs
    km = KMeans(7, random_state=0).fit(da.from_array(X, chunks=1000))
    sk = SkKMeans(7, init=km.cluster_centers_, n_init=1, max_iter=1).fit(X)
    sk.cluster_centers_ = km.cluster_centers_.astype(np.float64)
    Xd = da.from_array(X, chunks=777)
    np.testing.assert_array_equal(km.predict(Xd).compute(), sk.predict(X))
    np.testing.assert_allclose(km.transform(Xd).compute(), sk.transform(X), rtol=1e-6)
    assert km.score(Xd) == pytest.approx(sk.score(X), rel=1e-6)


def test_dask_ml_engine_agrees_and_reports_true_inertia(blobs):
    X, y = blobs
    Xd = da.from_array(X, chunks=1500)
    a = KMeans(7, random_state=0, engine="dask-ml", max_iter=50).fit(Xd)
    b = KMeans(7, random_state=0).fit(Xd)
    assert adjusted_rand_score(a.labels_.compute(), b.labels_.compute()) > 0.99
    labels = a.labels_.compute()
    assert a.inertia_ == pytest.approx(((X - a.cluster_centers_[labels]) ** 2).sum(), rel=1e-5)


def test_dask_ml_defects_are_still_there(blobs):
    """Pins the dask-ml 2025.1.0 defects that engine='dask-ml' works around: when one
    is fixed upstream this test fails, and the workaround in cluster_lib._compat can go."""
    import dask_ml
    from dask_ml.cluster import KMeans as DaskMLKMeans

    X, _ = blobs
    Xd = da.from_array(X, chunks=1500)
    with pytest.raises(TypeError, match="sample_weight"):
        DaskMLKMeans(7, init="k-means++", random_state=0).fit(Xd)
    # stopped by max_iter with a large last shift: inertia_ becomes a sum of plain distances
    km = DaskMLKMeans(7, init=X[:7], max_iter=1, tol=0.0).fit(Xd)
    labels = km.labels_.compute()
    d = np.sqrt(((X - km.cluster_centers_[labels]) ** 2).sum(1))
    assert km.inertia_ == pytest.approx(d.sum(), rel=1e-4), dask_ml.__version__
    assert km.inertia_ < 0.5 * (d**2).sum()


def test_errors_name_the_parameter(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match=r"n_samples=5 should be >= n_clusters=7"):
        KMeans(7).fit(X[:5])
    with pytest.raises(ValueError, match="'n_clusters' parameter of KMeans must be an int"):
        KMeans(0).fit(X)
    with pytest.raises(ValueError, match="'init' parameter"):
        KMeans(3, init="kmeans").fit(X)
    with pytest.raises(ValueError, match="shape of the initial centers"):
        KMeans(3, init=X[:2]).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 12"):
        KMeans(3, random_state=0).fit(X).predict(X[:, :3])


def test_streaming_matches_persisted(blobs):
    X, _ = blobs
    Xd = da.from_array(X, chunks=1000)
    a = KMeans(7, random_state=0, persist=False).fit(Xd)
    b = KMeans(7, random_state=0, persist=True).fit(Xd)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_.compute(), b.labels_.compute())


def test_not_converged_warns(blobs):
    X, _ = blobs
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        KMeans(7, init=X[:7], max_iter=1).fit(X)


@pytest.mark.parametrize("offset", [1e6, 1e8], ids=["1e6", "1e8"])
def test_float64_far_from_the_origin_keeps_its_digits(offset):
    X, _ = make_blobs(3000, n_features=5, centers=4, cluster_std=0.3, random_state=2)
    init = X[:4]
    sk = SkKMeans(4, init=init, n_init=1).fit(X)
    km = KMeans(4, init=init + offset).fit(da.from_array(X + offset, chunks=700))
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=1e-3)
    assert match_centers(km.cluster_centers_ - offset, sk.cluster_centers_) < 1e-3
