"""AgglomerativeClustering (k-means micro-clusters + exact weighted linkage) against scikit-learn's."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import dendrogram, fcluster, is_valid_linkage
from sklearn.cluster import AgglomerativeClustering as SkAgglomerative
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from cluster_lib import AgglomerativeClustering, linkage_matrix, weighted_linkage

LINKAGES = ["ward", "average", "complete", "single"]


@pytest.fixture(params=["sync", "threads", "distributed"])
def scheduler(request):
    if request.param == "distributed":
        yield request.getfixturevalue("client")
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.fixture(scope="module")
def generic():
    """Small data without ties: every pairwise distance (and merge height) is distinct."""
    return np.random.default_rng(7).standard_normal((150, 6)) * 3.0 + 20.0


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(4000, n_features=10, centers=5, cluster_std=1.0, random_state=3)
    return (X + 30.0).astype(np.float32), y


_SK_CACHE: dict = {}


def sk_fit(X: np.ndarray, n_clusters: int, linkage: str) -> SkAgglomerative:
    key = (id(X), n_clusters, linkage)
    if key not in _SK_CACHE:
        _SK_CACHE[key] = SkAgglomerative(n_clusters, linkage=linkage, compute_distances=True).fit(X)
    return _SK_CACHE[key]


def leaf_counts(children: np.ndarray) -> np.ndarray:
    n = children.shape[0] + 1
    c = np.ones(2 * n - 1, np.int64)
    for k, (a, b) in enumerate(children):
        c[n + k] = c[a] + c[b]
    return c[n:]


# -- exact mode: every row its own micro-cluster --------------------------------------
EXACT_CHUNKS = {"one-chunk": 150, "uneven": (60, 1, 89)}


@pytest.mark.parametrize("chunks", list(EXACT_CHUNKS.values()), ids=list(EXACT_CHUNKS))
@pytest.mark.parametrize("linkage", LINKAGES)
def test_exact_mode_equals_sklearn(generic, linkage, chunks, scheduler):
    X = generic
    sk = sk_fit(X, 4, linkage)
    Xd = da.from_array(X, chunks=(chunks, -1))
    model = AgglomerativeClustering(4, linkage=linkage, n_micro=len(X)).fit(Xd)
    assert model.micro_kmeans_ is None and model.n_leaves_ == len(X)
    assert isinstance(model.labels_, da.Array) and model.labels_.dtype == np.int32
    assert model.labels_.chunks[0] == Xd.chunks[0]
    labels = model.labels_.compute()
    assert adjusted_rand_score(labels, sk.labels_) == 1.0
    # same tree: scikit-learn orders a single-linkage pair as found, we put the smaller id first
    np.testing.assert_array_equal(np.sort(model.children_, axis=1), np.sort(sk.children_, axis=1))
    np.testing.assert_allclose(model.distances_, sk.distances_, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.counts_, leaf_counts(model.children_))
    np.testing.assert_array_equal(model.micro_labels_, labels)


def test_numpy_in_numpy_out(generic):
    model = AgglomerativeClustering(3, linkage="average").fit(generic)
    assert isinstance(model.labels_, np.ndarray) and model.labels_.dtype == np.int32
    pred = model.predict(generic)
    assert isinstance(pred, np.ndarray)
    np.testing.assert_array_equal(pred, model.labels_)
    np.testing.assert_array_equal(model.fit_predict(generic), model.labels_)


def test_predict_new_rows_takes_the_nearest_micro_centroid(generic):
    model = AgglomerativeClustering(4, linkage="ward").fit(generic)
    new = np.random.default_rng(1).standard_normal((40, 6)) * 3.0 + 20.0
    nearest = ((new[:, None, :] - model.micro_centers_[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(model.predict(new), model.micro_labels_[nearest])
    lazy = model.predict(da.from_array(new, chunks=15))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), model.micro_labels_[nearest])


# -- micro mode: k-means micro-clusters, then the linkage ----------------------------
MICRO_CHUNKS = {"one-chunk": 4000, "uneven": (1500, 1, 999, 1500)}


def check_micro_fit(model, X, y, linkage, n_micro):
    labels = model.labels_.compute()
    assert model.labels_.dtype == np.int32 and labels.shape == (len(X),)
    assert adjusted_rand_score(y, labels) >= 0.95
    sk = sk_fit(X, 5, linkage)
    assert adjusted_rand_score(sk.labels_, labels) >= 0.95
    m = model.n_leaves_
    assert m <= n_micro and model.micro_centers_.shape == (m, X.shape[1])
    assert model.micro_sizes_.sum() == len(X) and (model.micro_sizes_ > 0).all()
    assert model.children_.shape == (m - 1, 2) and model.counts_[-1] == len(X)
    assert np.all(np.diff(model.distances_) >= 0)
    # every row's final label is its micro-cluster's; predict agrees with labels_
    micro = model.micro_kmeans_.labels_.compute()
    kept = np.flatnonzero(np.bincount(micro, minlength=n_micro))
    np.testing.assert_array_equal(labels, model.micro_labels_[np.searchsorted(kept, micro)])
    np.testing.assert_array_equal(model.predict(da.from_array(X, chunks=1000)).compute(), labels)
    # clusters are numbered by decreasing size
    assert np.all(np.diff(np.bincount(labels)) <= 0)


@pytest.mark.parametrize("chunks", list(MICRO_CHUNKS.values()), ids=list(MICRO_CHUNKS))
def test_micro_mode_ward_recovers_blobs(blobs, chunks, scheduler):
    X, y = blobs
    model = AgglomerativeClustering(5, n_micro=60, random_state=0).fit(da.from_array(X, chunks=(chunks, -1)))
    check_micro_fit(model, X, y, "ward", 60)


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
def test_micro_mode_other_linkages_recover_blobs(blobs, linkage):
    X, y = blobs
    with dask.config.set(scheduler="sync"):
        model = AgglomerativeClustering(5, linkage=linkage, n_micro=60, random_state=0)
        model.fit(da.from_array(X, chunks=1000))
        check_micro_fit(model, X, y, linkage, 60)


def test_micro_mode_numpy_input_and_determinism(blobs):
    X, y = blobs
    a = AgglomerativeClustering(5, n_micro=40, random_state=1).fit(X)
    b = AgglomerativeClustering(5, n_micro=40, random_state=1).fit(X)
    assert isinstance(a.labels_, np.ndarray)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.children_, b.children_)
    assert adjusted_rand_score(y, a.labels_) >= 0.95


# -- the weighted linkage itself ------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=10),
    linkage=st.sampled_from(LINKAGES),
)
def test_weighted_linkage_equals_linkage_of_replicated_centroids(seed, sizes, linkage):
    """Weighted points give the tree of their copies, above the zero-height merges of the copies."""
    sizes = np.array(sizes)
    C = np.random.default_rng(seed).standard_normal((len(sizes), 3))
    children, distances, counts = weighted_linkage(C, sizes, linkage)
    reps = np.repeat(C, sizes, axis=0)
    sk = SkAgglomerative(1, linkage=linkage, compute_distances=True).fit(reps)
    tail = sk.distances_[len(reps) - len(sizes):]
    np.testing.assert_allclose(distances, tail, rtol=1e-9, atol=1e-12)
    assert counts[-1] == sizes.sum()
    for k in range(1, len(sizes) + 1):
        ours = np.repeat(_cut_labels(children, sizes, k), sizes)
        theirs = SkAgglomerative(k, linkage=linkage).fit(reps).labels_
        assert adjusted_rand_score(ours, theirs) == 1.0


def _cut_labels(children, sizes, k):
    from cluster_lib._agglomerative import _cut

    return _cut(children, np.asarray(sizes), k)


def test_weighted_ward_heights_in_sklearn_units():
    # two points of 1 and 3 rows at distance 1: merge cost 3/4, height sqrt(2 * 3/4)
    children, distances, counts = weighted_linkage([[0.0], [1.0], [5.0]], [1, 3, 1], "ward")
    np.testing.assert_array_equal(children, [[0, 1], [2, 3]])
    np.testing.assert_allclose(distances[0], np.sqrt(2 * 3 / 4))
    # then {0, 1} (4 rows, centroid 0.75) with the point at 5: sqrt(2 * 4 / 5) * 4.25
    np.testing.assert_allclose(distances[1], np.sqrt(2 * 4 / 5) * 4.25)
    np.testing.assert_array_equal(counts, [4, 5])


@pytest.mark.parametrize(
    "args, match",
    [
        (([[0.0], [1.0]], None, "median"), "linkage='median' should be one of"),
        (([[0.0], [np.nan]], None, "ward"), "NaN or infinity"),
        (([[0.0], [1.0]], [1, 0], "ward"), "sizes should be positive"),
        (([[0.0], [1.0]], [1, 2, 3], "ward"), r"sizes.shape == \(3,\), expected \(2,\)"),
    ],
    ids=["linkage", "nan", "zero-size", "sizes-shape"],
)
def test_weighted_linkage_errors(args, match):
    with pytest.raises(ValueError, match=match):
        weighted_linkage(*args)


def test_linkage_matrix_feeds_scipy(generic):
    model = AgglomerativeClustering(4, linkage="average", n_micro=50, random_state=0).fit(generic)
    Z = linkage_matrix(model)
    assert Z.shape == (model.n_leaves_ - 1, 4) and is_valid_linkage(Z, throw=True)
    tree = dendrogram(Z, no_plot=True, labels=model.micro_sizes_.tolist())
    assert len(tree["leaves"]) == model.n_leaves_
    assert adjusted_rand_score(fcluster(Z, 4, criterion="maxclust"), model.micro_labels_) == 1.0
    # the same helper reads scikit-learn's model
    sk = sk_fit(generic, 4, "average")
    assert is_valid_linkage(linkage_matrix(sk), throw=True)


# -- edge cases -------------------------------------------------------------------------
@pytest.mark.parametrize("n_micro", [1, 50, 1000], ids=["one-micro", "micro", "exact"])
def test_one_cluster(generic, n_micro):
    model = AgglomerativeClustering(1, n_micro=n_micro, random_state=0).fit(da.from_array(generic, chunks=40))
    assert np.all(model.labels_.compute() == 0) and model.n_clusters_ == 1
    assert np.all(model.micro_labels_ == 0)
    assert model.children_.shape == (model.n_leaves_ - 1, 2)


def test_n_clusters_larger_than_n_micro_is_refused_before_fitting(generic):
    with pytest.raises(ValueError, match="n_clusters=30 should be <= n_micro=20"):
        AgglomerativeClustering(30, n_micro=20).fit(generic)


def test_n_clusters_larger_than_the_non_empty_micro_clusters():
    # 5 distinct rows, each 40 times: k-means leaves at most 5 micro-clusters non-empty
    X = np.repeat(np.random.default_rng(0).standard_normal((5, 4)) * 10, 40, axis=0)
    with pytest.raises(ValueError, match="n_clusters=8 is larger than the 5 non-empty micro-clusters"):
        AgglomerativeClustering(8, n_micro=20, random_state=0).fit(X)
    model = AgglomerativeClustering(5, n_micro=20, random_state=0).fit(X)
    assert model.n_leaves_ == 5 and np.all(model.micro_sizes_ == 40)
    assert np.all(np.bincount(model.labels_) == 40)


def test_n_clusters_larger_than_the_rows():
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=5"):
        AgglomerativeClustering(5).fit(np.eye(3))


@pytest.mark.parametrize("linkage", LINKAGES)
def test_duplicate_rows(generic, linkage):
    X = np.concatenate([generic[:60], generic[:60]])
    model = AgglomerativeClustering(4, linkage=linkage).fit(X)
    np.testing.assert_array_equal(model.labels_[:60], model.labels_[60:])
    assert np.sum(model.distances_ == 0) == 60
    assert adjusted_rand_score(model.labels_, sk_fit(X, 4, linkage).labels_) == 1.0
    np.testing.assert_array_equal(model.predict(X), model.labels_)


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        ({"linkage": "median"}, "The 'linkage' parameter of AgglomerativeClustering must be a str among"),
        ({"n_clusters": 0}, "The 'n_clusters' parameter of AgglomerativeClustering must be an int in the range"),
        ({"n_micro": 0}, "The 'n_micro' parameter of AgglomerativeClustering must be an int in the range"),
        ({"persist": "sometimes"}, "The 'persist' parameter of AgglomerativeClustering must be"),
        ({"micro_max_iter": 0}, "The 'micro_max_iter' parameter"),
    ],
    ids=["linkage", "n_clusters", "n_micro", "persist", "micro_max_iter"],
)
def test_invalid_parameters(generic, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        AgglomerativeClustering(**params).fit(generic)


def test_input_errors(generic):
    with pytest.raises(ValueError, match="Expected 2D array"):
        AgglomerativeClustering().fit(da.ones(10, chunks=5))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        AgglomerativeClustering().fit(np.array([[0.0], [np.nan], [1.0]]))
    with pytest.raises(ValueError, match="Input X contains NaN or infinity"):
        AgglomerativeClustering().fit(da.from_array(np.array([[0.0], [np.nan], [1.0]])))
    with pytest.raises(NotFittedError):
        AgglomerativeClustering().predict(generic)
    model = AgglomerativeClustering(3).fit(generic)
    with pytest.raises(ValueError, match="X has 3 features, but AgglomerativeClustering is expecting 6 features"):
        model.predict(generic[:, :3])


# -- scikit-learn's estimator checks, numpy path -------------------------------------------
@parametrize_with_checks(
    [
        AgglomerativeClustering(n_clusters=3, random_state=0),  # exact mode (the checks' data is small)
        AgglomerativeClustering(n_clusters=3, n_micro=10, random_state=0),  # micro mode
    ],
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_a_tree_that_does_not_fit_in_memory_is_refused(generic, monkeypatch):
    import cluster_lib._agglomerative as agglomerative

    monkeypatch.setattr(agglomerative, "_available_memory", lambda: 2**16)
    with pytest.raises(ValueError, match=r"The linkage of 150 micro-clusters needs .* lower n_micro"):
        AgglomerativeClustering(3).fit(generic)
