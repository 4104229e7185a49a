"""cluster_lib DBSCAN against scikit-learn's DBSCAN, and its sampled, thinned and automatic modes."""

from __future__ import annotations

import logging

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from cluster_lib import _dbscan
from cluster_lib._dbscan import DBSCAN, kdistance_knee, scaled_min_samples


@pytest.fixture(scope="module")
def blobs():
    """Five blobs in 6-D, pointing in different directions, plus 60 uniform noise rows."""
    X, y = make_blobs(2000, n_features=6, centers=5, cluster_std=0.7, center_box=(-10, 10), random_state=4)
    noise = np.random.default_rng(0).uniform(-12, 12, (60, 6))
    return np.vstack([X, noise]), np.concatenate([y, np.full(60, -1)])


#: metric -> (eps in the metric's units, scikit-learn metric)
METRICS = {"euclidean": 1.5, "cosine": 0.005}
CHUNKS = {"one-chunk": 2060, "uneven": (700, 1, 859, 500)}


@pytest.fixture(params=["sync", "threads", "distributed"])
def scheduler(request):
    if request.param == "distributed":
        yield request.getfixturevalue("client")
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


def noise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a) == -1, np.asarray(b) == -1))


@pytest.mark.parametrize("metric", list(METRICS), ids=list(METRICS))
@pytest.mark.parametrize("chunks", list(CHUNKS.values()), ids=list(CHUNKS))
def test_whole_data_sample_matches_sklearn(blobs, metric, chunks, scheduler):
    X, _ = blobs
    eps = METRICS[metric]
    sk = SkDBSCAN(eps=eps, min_samples=5, metric=metric).fit(X)
    db = DBSCAN(eps=eps, min_samples=5, metric=metric, max_core_points=5000).fit(
        da.from_array(X, chunks=(chunks, -1)))
    labels = db.labels_.compute()
    assert db.components_.shape[0] == db.core_sample_indices_.size  # not thinned
    assert labels.dtype == np.int32
    assert noise_equal(labels, sk.labels_)
    assert adjusted_rand_score(sk.labels_, labels) >= 0.95
    # every row is in the sample and keeps the exact DBSCAN's label, numbering included
    np.testing.assert_array_equal(labels, sk.labels_)
    np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)
    assert db.n_clusters_ == sk.labels_.max() + 1 == 5
    assert db.noise_fraction_ == pytest.approx(np.mean(sk.labels_ == -1))
    # predict: nearest core point within eps; noise decided exactly, border rows may move
    pred = db.predict(da.from_array(X, chunks=(chunks, -1))).compute()
    assert noise_equal(pred, sk.labels_)
    assert adjusted_rand_score(sk.labels_, pred) >= 0.95


def test_cosine_radius_on_the_unit_sphere(blobs):
    X, _ = blobs
    db = DBSCAN(eps=0.005, metric="cosine").fit(X)
    assert db.eps_input_ == 0.005
    assert db.eps_ == pytest.approx(np.sqrt(2 * 0.005))
    np.testing.assert_allclose(np.linalg.norm(db.components_, axis=1), 1.0, rtol=1e-12)


def test_numpy_in_numpy_out_and_dask_in_dask_out(blobs):
    X, _ = blobs
    db = DBSCAN(eps=1.5).fit(X)
    assert isinstance(db.labels_, np.ndarray) and db.labels_.dtype == np.int32
    assert isinstance(db.predict(X[:10]), np.ndarray)
    np.testing.assert_array_equal(db.fit_predict(X), db.labels_)
    dd = DBSCAN(eps=1.5).fit(da.from_array(X, chunks=500))
    assert isinstance(dd.labels_, da.Array) and dd.labels_.dtype == np.int32
    assert isinstance(dd.predict(da.from_array(X, chunks=500)), da.Array)
    np.testing.assert_array_equal(dd.labels_.compute(), db.labels_)


@pytest.mark.parametrize("persist", [True, False], ids=["persisted", "streamed"])
def test_dask_labels_persisted_or_streamed(blobs, persist):
    X, _ = blobs
    ref = SkDBSCAN(eps=1.5).fit(X).labels_
    db = DBSCAN(eps=1.5, persist=persist).fit(da.from_array(X, chunks=600))
    np.testing.assert_array_equal(db.labels_.compute(), ref)


def test_all_noise_with_tiny_eps(blobs):
    X, _ = blobs
    db = DBSCAN(eps=1e-6, min_samples=3).fit(X)
    assert np.all(db.labels_ == -1)
    assert db.noise_fraction_ == 1.0
    assert db.n_clusters_ == 0
    assert db.components_.shape == (0, X.shape[1]) and db.core_sample_indices_.size == 0
    assert np.all(db.predict(X[:50]) == -1)


def test_one_cluster():
    X, _ = make_blobs(500, n_features=4, centers=1, cluster_std=0.5, random_state=0)
    db = DBSCAN(eps=0.8, min_samples=5).fit(X)
    sk = SkDBSCAN(eps=0.8, min_samples=5).fit(X)
    assert db.n_clusters_ == 1
    np.testing.assert_array_equal(db.labels_, sk.labels_)


def test_duplicate_rows(blobs):
    X = np.repeat(blobs[0][::4], 3, axis=0)
    sk = SkDBSCAN(eps=1.5, min_samples=5).fit(X)
    db = DBSCAN(eps=1.5, min_samples=5).fit(da.from_array(X, chunks=400))
    np.testing.assert_array_equal(db.labels_.compute(), sk.labels_)
    # the knee is taken on distinct rows: copies do not make every k-distance zero (with
    # min_samples <= 3 each noise row's three copies would still be a cluster, as in DBSCAN)
    auto = DBSCAN(eps="auto", min_samples=5).fit(X)
    assert auto.eps_ > 0.1 and auto.n_clusters_ == 5


def test_eps_auto_is_sensible_on_blobs(blobs, caplog):
    X, y = blobs
    with caplog.at_level(logging.INFO, logger="cluster_lib._dbscan"):
        db = DBSCAN(eps="auto", min_samples=10).fit(X)
    assert db.n_clusters_ == 5
    assert 0.0 < db.noise_fraction_ < 0.15
    assert adjusted_rand_score(y, db.labels_) >= 0.95
    assert db.eps_input_ == db.eps_
    assert "eps='auto'" in caplog.text and "5 clusters, noise fraction" in caplog.text
    cos = DBSCAN(eps="auto", min_samples=10, metric="cosine").fit(X)
    assert cos.n_clusters_ == 5 and adjusted_rand_score(y, cos.labels_) >= 0.95
    assert cos.eps_input_ == pytest.approx(cos.eps_**2 / 2)


@pytest.fixture(scope="module")
def large_blobs():
    """20,000 rows of 8 well-separated blobs in 10-D, then 20 far outliers."""
    X, y = make_blobs(20000, n_features=10, centers=8, cluster_std=0.5, center_box=(-20, 20), random_state=2)
    out = np.random.default_rng(1).uniform(-1, 1, (20, 10)) * 100 + 200
    return np.vstack([X, out]).astype(np.float32), np.concatenate([y, np.full(20, -1)])


@pytest.mark.parametrize("max_core_points", [5000, 60], ids=["all-core", "thinned"])
def test_sample_recovers_blobs_and_outliers(large_blobs, max_core_points, scheduler):
    X, y = large_blobs
    db = DBSCAN(eps=2.0, min_samples=20, sample_size=2000, max_core_points=max_core_points,
                random_state=0).fit(da.from_array(X, chunks=(6000, -1)))
    labels = db.labels_.compute()
    assert db.sample_indices_.size == 2000 and db.min_samples_ == scaled_min_samples(20, 0.1) == 3
    assert db.n_clusters_ == 8
    assert adjusted_rand_score(y[:-20], labels[:-20]) >= 0.95
    assert np.all(labels[-20:] == -1)
    assert db.components_.shape[0] <= max(max_core_points, 8)
    assert db.eps_ <= db.label_radius_ <= db.eps_ + db.cover_radius_
    np.testing.assert_array_equal(labels[db.sample_indices_], db.sample_labels_)


def test_thinned_core_points_on_the_whole_data(blobs):
    X, _ = blobs
    sk = SkDBSCAN(eps=1.5).fit(X)
    db = DBSCAN(eps=1.5, max_core_points=100).fit(X)
    assert db.components_.shape == (100, X.shape[1])
    assert db.cover_radius_ > 0
    np.testing.assert_array_equal(db.core_sample_indices_, sk.core_sample_indices_)
    pred = db.predict(X)
    assert adjusted_rand_score(sk.labels_, pred) >= 0.95
    assert np.mean((pred == -1) == (sk.labels_ == -1)) >= 0.97


def test_more_clusters_than_core_points_warns(blobs):
    X, _ = blobs
    with pytest.warns(UserWarning, match=r"5 clusters, more than max_core_points=3"):
        db = DBSCAN(eps=1.5, max_core_points=3).fit(X)
    assert db.components_.shape[0] == 5


def test_memory_warning(blobs, monkeypatch):
    monkeypatch.setattr(_dbscan, "NEIGHBOURHOOD_BYTES_WARN", 1000)
    with pytest.warns(UserWarning, match=r"neighbour lists; lower sample_size or eps"):
        DBSCAN(eps=1.5).fit(blobs[0])


def test_scaled_min_samples_rule():
    assert scaled_min_samples(5, 1.0) == 5
    assert scaled_min_samples(11, 0.5) == 6
    assert scaled_min_samples(10, 0.01) == 2  # floor of 2
    assert scaled_min_samples(1, 0.01) == 1  # unless min_samples itself is lower
    assert scaled_min_samples(2, 0.5) == 2


def test_knee_of_degenerate_curves():
    assert kdistance_knee(np.zeros(10)) == (1.0, 1.0)
    assert kdistance_knee(np.full(10, 3.0))[0] == 3.0
    curve = np.concatenate([np.linspace(1.0, 1.2, 95), [5, 8, 20, 60, 100]])
    eps, q = kdistance_knee(curve)
    assert 1.1 <= eps <= 1.2 and 0.85 <= q <= 0.95


@pytest.mark.parametrize(
    "params, match",
    [
        ({"eps": -1.0}, r"The 'eps' parameter of DBSCAN must be a float in the range \(0.0, inf\) or a str among"),
        ({"eps": "knee"}, r"The 'eps' parameter of DBSCAN must be"),
        ({"min_samples": 0}, r"The 'min_samples' parameter of DBSCAN must be an int in the range \[1, inf\)"),
        ({"metric": "manhattan"}, r"The 'metric' parameter of DBSCAN must be a str among \{.*'cosine'.*\}"),
        ({"sample_size": 0}, r"The 'sample_size' parameter of DBSCAN must be"),
        ({"max_core_points": 0}, r"The 'max_core_points' parameter of DBSCAN must be"),
        ({"persist": "sometimes"}, r"The 'persist' parameter of DBSCAN must be"),
    ],
    ids=["eps-negative", "eps-str", "min_samples", "metric", "sample_size", "max_core_points", "persist"],
)
def test_parameter_errors(params, match):
    with pytest.raises(ValueError, match=match):
        DBSCAN(**params).fit(np.zeros((10, 2)))


def test_predict_errors(blobs):
    X, _ = blobs
    with pytest.raises(NotFittedError):
        DBSCAN().predict(X)
    db = DBSCAN(eps=1.5).fit(X)
    with pytest.raises(ValueError, match=r"X has 3 features, but DBSCAN is expecting 6 features as input."):
        db.predict(X[:, :3])


@parametrize_with_checks([DBSCAN(random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
