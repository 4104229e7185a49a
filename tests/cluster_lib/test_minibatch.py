"""cluster_lib.MiniBatchKMeans against scikit-learn's MiniBatchKMeans and KMeans."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from cluster_lib import MiniBatchKMeans
from cluster_lib._minibatch import minibatch_chunk

from .test_kmeans import match_centers


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(20000, n_features=10, centers=8, cluster_std=1.0, random_state=7)
    return (X + 25.0).astype(np.float32), y


@pytest.mark.parametrize("chunks", [20000, (5000, 1, 9999, 5000)], ids=["one-chunk", "uneven"])
@pytest.mark.parametrize("where", ["threads", "distributed"])
def test_recovers_blobs_like_sklearn(blobs, chunks, where, request):
    X, y = blobs
    if where == "distributed":
        request.getfixturevalue("client")
    ctx = dask.config.set(scheduler="threads") if where == "threads" else dask.config.set({})
    with ctx:
        mb = MiniBatchKMeans(8, random_state=0, batch_size=512).fit(da.from_array(X, chunks=(chunks, -1)))
    sk = SkMiniBatchKMeans(8, random_state=0, batch_size=512, n_init=1).fit(X)
    full = SkKMeans(8, n_init=1, random_state=0).fit(X)
    assert adjusted_rand_score(y, mb.labels_.compute()) > 0.99
    assert mb.inertia_ <= 1.01 * full.inertia_
    assert mb.inertia_ <= 1.01 * sk.inertia_
    assert match_centers(mb.cluster_centers_, full.cluster_centers_) < 0.1


def test_update_rule_is_the_running_mean():
    # one batch holding every row: each center becomes the mean of its rows
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4)) + np.repeat(np.eye(4)[:3] * 10, 100, axis=0)
    centers = np.eye(4)[:3] * 9.0
    state = (centers, np.zeros(3), 0.0, 0)
    new, weights, _, nb = minibatch_chunk(state, X, None, np.zeros(4), batch_size=300,
                                          reassignment_ratio=0.0, seed=0)
    labels = np.repeat(np.arange(3), 100)
    np.testing.assert_allclose(new, [X[labels == j].mean(0) for j in range(3)], rtol=1e-5)
    np.testing.assert_array_equal(weights, [100, 100, 100])
    assert nb == 1
    # a second batch of the same rows leaves the running mean where it is
    again, weights2, _, _ = minibatch_chunk((new, weights, 0.0, 0), X, None, np.zeros(4), 300, 0.0, 1)
    np.testing.assert_allclose(again, new, rtol=1e-5)
    np.testing.assert_array_equal(weights2, [200, 200, 200])


def test_sample_weight_counts_like_repeated_rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)) + np.repeat(np.eye(3)[:2] * 10, 100, axis=0)
    w = rng.integers(1, 4, 200).astype(float)
    centers = np.eye(3)[:2] * 9.0
    a = minibatch_chunk((centers, np.zeros(2), 0.0, 0), X, w, np.zeros(3), 200, 0.0, 0)
    Xr = np.repeat(X, w.astype(int), axis=0)
    b = minibatch_chunk((centers, np.zeros(2), 0.0, 0), Xr, None, np.zeros(3), len(Xr), 0.0, 0)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
    np.testing.assert_allclose(a[1], b[1])


def test_numpy_in_numpy_out_and_predict(blobs):
    X, y = blobs
    mb = MiniBatchKMeans(8, random_state=1, max_iter=3).fit(X[:5000])
    assert isinstance(mb.labels_, np.ndarray)
    np.testing.assert_array_equal(mb.predict(X[:5000]), mb.labels_)
    assert mb.n_iter_ <= 3 and mb.n_steps_ >= 5
    assert mb.score(X[:5000]) == pytest.approx(-mb.inertia_, rel=1e-6)


def test_errors(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=8"):
        MiniBatchKMeans(8).fit(X[:3])
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        MiniBatchKMeans(8, batch_size=0).fit(X)
