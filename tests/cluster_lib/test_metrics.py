"""The partition-wise scores against scikit-learn's on the same data, for any chunking."""

from __future__ import annotations

import collections
import os
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs

from cluster_lib.metrics import (
    ClusterScores,
    calinski_harabasz_score,
    cluster_scores,
    cluster_sizes,
    davies_bouldin_score,
    silhouette_score,
)

RTOL = 1e-6


def _data(dtype=np.float64):
    """Blobs with labels that are not 0..k-1, a 3-row cluster and a 1-row cluster.

    Rows are sorted by label, so with small chunks most clusters span several
    chunks while the small ones live inside one.
    """
    X, y = make_blobs(n_samples=400, n_features=6, centers=4, cluster_std=1.5, random_state=0)
    y = np.array([5, 17, 1000, -3])[y]
    rng = np.random.default_rng(1)
    X = np.vstack([X, rng.normal(8.0, 0.3, size=(3, 6)), [[-9.0] * 6]])
    y = np.concatenate([y, [42, 42, 42], [7]])
    order = np.argsort(y, kind="stable")
    return X[order].astype(dtype), y[order]


def _uneven(n: int) -> tuple[int, ...]:
    sizes = [1, 57, 0, 3, 130, 2, 88]  # an empty chunk too
    return tuple(sizes) + (n - sum(sizes),)


CHUNKINGS = {
    "one-chunk": lambda n: (n,),
    "uneven": _uneven,
    "tiny": lambda n: 16,
}


@pytest.fixture(params=["sync", "threads", "distributed"], ids=["sync", "threads", "distributed"])
def scheduler(request):
    """Run the test body on the named scheduler (distributed: the session's LocalCluster)."""
    if request.param == "distributed":
        request.getfixturevalue("client")
        yield request.param
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.fixture
def sync():
    with dask.config.set(scheduler="sync"):
        yield


def _assert_matches_sklearn(Xd, y, X_ref, y_ref, **kw):
    s = cluster_scores(Xd, y, **kw)
    assert s.calinski_harabasz == pytest.approx(skm.calinski_harabasz_score(X_ref, y_ref), rel=RTOL)
    assert s.davies_bouldin == pytest.approx(skm.davies_bouldin_score(X_ref, y_ref), rel=RTOL)
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS), ids=list(CHUNKINGS))
def test_scores_match_sklearn(chunking, dtype, scheduler):
    X, y = _data(dtype)
    Xd = da.from_array(X, chunks=(CHUNKINGS[chunking](X.shape[0]), -1))
    s = _assert_matches_sklearn(Xd, y, X, y)
    # the exact value for float32 input is scikit-learn's on the same values in float64
    assert s.davies_bouldin == pytest.approx(skm.davies_bouldin_score(X.astype(np.float64), y), rel=RTOL)
    assert calinski_harabasz_score(Xd, y) == pytest.approx(s.calinski_harabasz, rel=RTOL)
    assert davies_bouldin_score(Xd, y) == pytest.approx(s.davies_bouldin, rel=RTOL)
    assert s.n_samples == X.shape[0] and s.n_clusters == 6 and s.n_noise == 0
    assert s.sizes == {-3: 100, 5: 100, 7: 1, 17: 100, 42: 3, 1000: 100}
    assert list(s.sizes) == sorted(s.sizes)


def test_labels_as_dask_with_other_chunks(sync):
    X, y = _data()
    Xd = da.from_array(X, chunks=(50, 3))  # column chunks too
    yd = da.from_array(y, chunks=37)
    _assert_matches_sklearn(Xd, yd, X, y)
    # numpy X takes the dask labels' chunks
    _assert_matches_sklearn(X, yd, X, y)
    # labels with unknown chunk sizes
    _assert_matches_sklearn(Xd, yd[yd > -10**6], X, y)


def test_labels_not_zero_to_k_minus_one(sync):
    X, y = _data()
    code = np.unique(y, return_inverse=True)[1]
    for mapping in ([10**12, -(10**12), 3, 4, 5, 6], [0, 1, 2, 3, 4, 5]):
        relabeled = np.asarray(mapping, dtype=np.int64)[code]
        _assert_matches_sklearn(da.from_array(X, chunks=(33, -1)), relabeled, X, relabeled)
    _assert_matches_sklearn(X, y.astype(np.int16), X, y)


def test_single_row_cluster_in_a_tiny_chunk(sync):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4))
    y = np.repeat([0, 1, 2], 10)
    y[17] = 99  # alone, in the middle of a chunk
    _assert_matches_sklearn(da.from_array(X, chunks=(4, -1)), y, X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_uncentered_data_keeps_its_digits(dtype, sync):
    # a large shared offset: the exact scores are those of the data without it
    X, y = _data(np.float64)
    offset = 1e4
    Xo = (X + offset).astype(dtype)
    exact = Xo.astype(np.float64) - offset  # exact: both terms are float64 and close
    s = cluster_scores(da.from_array(Xo, chunks=(29, -1)), y)
    assert s.calinski_harabasz == pytest.approx(skm.calinski_harabasz_score(exact, y), rel=RTOL)
    assert s.davies_bouldin == pytest.approx(skm.davies_bouldin_score(exact, y), rel=RTOL)
    assert calinski_harabasz_score(da.from_array(Xo, chunks=(29, -1)), y) == pytest.approx(
        s.calinski_harabasz, rel=RTOL
    )


def test_identical_centroids_never_pair(sync):
    X = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [5, 5], [6, 5.0]]) + 3
    y = np.array([0, 0, 1, 1, 2, 2])
    _assert_matches_sklearn(da.from_array(X, chunks=(2, -1)), y, X, y)


def test_zero_dispersion_gives_sklearn_constants(sync):
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    s = _assert_matches_sklearn(da.from_array(X, chunks=(1, -1)), y, X, y)
    assert (s.calinski_harabasz, s.davies_bouldin) == (1.0, 0.0)


@pytest.mark.parametrize("chunks", [400, 23], ids=["one-chunk", "chunks-23"])
def test_noise_label_none_scores_minus_one_like_any_label(chunks, sync):
    X, y = _data()
    y = np.where(y == 17, -1, y)
    s = _assert_matches_sklearn(da.from_array(X, chunks=(chunks, -1)), y, X, y)
    assert s.n_noise == 0 and s.sizes[-1] == 100


@pytest.mark.parametrize("chunks", [404, 23, 7], ids=["one-chunk", "chunks-23", "chunks-7"])
def test_noise_label_excludes_rows(chunks, scheduler):
    X, y = _data()
    rng = np.random.default_rng(4)
    y = np.where(rng.random(y.shape[0]) < 0.2, -1, y)
    keep = y != -1
    Xd = da.from_array(X, chunks=(chunks, -1))
    s = _assert_matches_sklearn(Xd, y, X[keep], y[keep], noise_label=-1)
    assert s.n_noise == int((~keep).sum()) and s.n_samples == int(keep.sum())
    assert -1 not in s.sizes
    assert calinski_harabasz_score(Xd, y, noise_label=-1) == pytest.approx(s.calinski_harabasz, rel=RTOL)
    assert davies_bouldin_score(Xd, y, noise_label=-1) == pytest.approx(s.davies_bouldin, rel=RTOL)


@pytest.mark.parametrize(
    "labels",
    [np.zeros(20, dtype=int), np.arange(20)],
    ids=["one-label", "n_labels-equals-n_samples"],
)
def test_number_of_labels_errors_match_sklearn(labels, sync):
    X = np.random.default_rng(5).normal(size=(20, 3))
    with pytest.raises(ValueError) as expected:
        skm.calinski_harabasz_score(X, labels)
    for score in (calinski_harabasz_score, davies_bouldin_score, cluster_scores):
        with pytest.raises(type(expected.value), match=f"Number of labels is {len(set(labels))}"):
            score(da.from_array(X, chunks=(6, -1)), labels)


def test_noise_leaving_one_label_raises(sync):
    X = np.random.default_rng(6).normal(size=(10, 2))
    y = np.array([-1] * 5 + [3] * 5)
    assert np.isfinite(cluster_scores(X, y).davies_bouldin)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        cluster_scores(X, y, noise_label=-1)


@pytest.mark.parametrize(
    ("X", "labels", "kw", "match"),
    [
        (np.ones((4, 2)), np.array([0, 0, 1]), {}, "inconsistent numbers of samples"),
        (np.ones(4), np.array([0, 0, 1, 1]), {}, "X must be 2-D"),
        (np.ones((4, 2)), np.array([0.0, 0.0, 1.0, 1.0]), {}, "labels must be integers"),
        (np.ones((4, 2)), np.array([[0, 0, 1, 1]]), {}, "labels must be 1-D"),
        (np.array([[0, 1], [np.nan, 0], [1, 1], [2, 2]]), np.array([0, 0, 1, 1]), {}, "NaN or infinity"),
        (np.ones((4, 2)), np.array([0, 0, 1, 1]), {"which": "silhouette"}, "which='silhouette'"),
        (np.ones((4, 2)), np.array([0, 0, 1, 1]), {"noise_label": "x"}, "noise_label='x'"),
    ],
    ids=["length", "1-D-X", "float-labels", "2-D-labels", "nan", "which", "noise_label"],
)
def test_bad_input_raises_value_error(X, labels, kw, match, sync):
    with pytest.raises(ValueError, match=match):
        cluster_scores(X, labels, **kw)


def test_at_most_two_passes_over_x(sync):
    X, y = _data()
    reads: collections.Counter = collections.Counter()

    def counted(block, block_info=None):
        reads[block_info[0]["chunk-location"]] += 1
        return block

    Xd = da.from_array(X, chunks=(50, -1)).map_blocks(counted, dtype=X.dtype)
    cluster_scores(Xd, y)
    assert set(reads.values()) == {2} and len(reads) == 9
    reads.clear()
    calinski_harabasz_score(Xd, y)
    assert set(reads.values()) == {1} and len(reads) == 9


def test_result_to_dict(sync):
    X, y = _data()
    s = cluster_scores(X, y, which=["davies_bouldin"])
    assert isinstance(s, ClusterScores) and s.calinski_harabasz is None
    d = s.to_dict()
    assert d["sizes"]["42"] == 3 and d["davies_bouldin"] == s.davies_bouldin


# --- silhouette -------------------------------------------------------------------


@pytest.mark.parametrize("chunking", list(CHUNKINGS), ids=list(CHUNKINGS))
def test_silhouette_full_sample_equals_sklearn(chunking, scheduler):
    X, y = _data()
    Xd = da.from_array(X, chunks=(CHUNKINGS[chunking](X.shape[0]), -1))
    expected = skm.silhouette_score(X, y)
    assert silhouette_score(Xd, y, sample_size=None) == pytest.approx(expected, rel=1e-9)
    assert silhouette_score(Xd, y, sample_size=10**6) == pytest.approx(expected, rel=1e-9)


def test_silhouette_seeded_sample_is_reproducible_and_sklearns(sync):
    X, y = _data()
    values = {
        silhouette_score(da.from_array(X, chunks=(c, -1)), y, sample_size=100, random_state=7)
        for c in (404, 31, 4)
    }
    assert len(values) == 1
    (value,) = values
    # the same rows scikit-learn draws with the same seed
    assert value == pytest.approx(skm.silhouette_score(X, y, sample_size=100, random_state=7), rel=1e-9)
    assert silhouette_score(X, y, sample_size=100, random_state=8) != value


def test_silhouette_noise_label(sync):
    X, y = _data()
    y = np.where(np.arange(y.shape[0]) % 5 == 0, -1, y)
    keep = y != -1
    Xd = da.from_array(X, chunks=(37, -1))
    full = silhouette_score(Xd, y, sample_size=None, noise_label=-1)
    assert full == pytest.approx(skm.silhouette_score(X[keep], y[keep]), rel=1e-9)
    sampled = silhouette_score(Xd, y, sample_size=50, random_state=0, noise_label=-1)
    ref = skm.silhouette_score(X[keep], y[keep], sample_size=50, random_state=0)
    assert sampled == pytest.approx(ref, rel=1e-9)


def test_silhouette_fewer_than_two_labels_is_nan_with_warning(sync):
    X = np.random.default_rng(8).normal(size=(50, 2))
    y = np.zeros(50, dtype=int)
    with pytest.warns(RuntimeWarning, match="1 distinct labels") as record:
        assert np.isnan(silhouette_score(X, y, sample_size=10, random_state=0))
    assert record[0].filename == __file__
    with pytest.raises(ValueError, match="sample_size=0"):
        silhouette_score(X, y, sample_size=0)


# --- sizes ------------------------------------------------------------------------


@pytest.mark.parametrize("as_dask", [False, True], ids=["numpy", "dask"])
def test_cluster_sizes(as_dask, sync):
    y = np.random.default_rng(9).choice([-1, 5, 17, 1000], size=333)
    labels = da.from_array(y, chunks=10) if as_dask else y
    u, c = np.unique(y, return_counts=True)
    assert cluster_sizes(labels) == dict(zip(u.tolist(), c.tolist()))
    assert cluster_sizes(np.array([], dtype=int)) == {}


# --- property ---------------------------------------------------------------------


@st.composite
def clusterings(draw):
    n = draw(st.integers(3, 60))
    d = draw(st.integers(1, 5))
    values = draw(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=6, unique=True))
    codes = draw(st.lists(st.integers(0, len(values) - 1), min_size=n, max_size=n))
    # repeated cuts make empty chunks
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), max_size=6)))
    chunks = tuple(np.diff([0, *cuts, n]).tolist())
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 100.0]))
    offset = draw(st.sampled_from([0.0, 5.0, -50.0]))
    noise = draw(st.sampled_from([None, values[0]]))
    X = np.random.default_rng(seed).normal(offset, scale, size=(n, d))
    return X, np.asarray(values, dtype=np.int64)[codes], chunks, noise


# IVC_HYPOTHESIS_EXAMPLES=2000 for a longer search (the default keeps the file fast)
@settings(
    max_examples=int(os.environ.get("IVC_HYPOTHESIS_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(clusterings())
def test_property_any_data_and_chunking_gives_sklearns_scores(case):
    X, y, chunks, noise = case
    keep = np.ones(y.shape[0], dtype=bool) if noise is None else y != noise
    Xd = da.from_array(X, chunks=(chunks, -1))
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            ch = skm.calinski_harabasz_score(X[keep], y[keep])
            # scikit-learn takes distances as sqrt(|x|^2 - 2 x.c + |c|^2), which loses
            # digits on uncentered data; the score is translation invariant, so centre first
            db = skm.davies_bouldin_score(X[keep] - X[keep].mean(axis=0), y[keep])
        except ValueError:
            with pytest.raises(ValueError):
                cluster_scores(Xd, y, noise_label=noise)
            return
        s = cluster_scores(Xd, y, noise_label=noise)
        ch_one_pass = calinski_harabasz_score(Xd, y, noise_label=noise)
    assert s.calinski_harabasz == pytest.approx(ch, rel=RTOL)
    assert ch_one_pass == pytest.approx(ch, rel=RTOL)
    assert s.davies_bouldin == pytest.approx(db, rel=RTOL)
    assert sum(s.sizes.values()) == s.n_samples == int(keep.sum())
