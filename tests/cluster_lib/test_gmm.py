"""cluster_lib GaussianMixture against scikit-learn's GaussianMixture on the same data and start."""

from __future__ import annotations

import itertools
import math
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from cluster_lib import GaussianMixture

COV_TYPES = ["diag", "spherical", "full"]
K, D = 4, 6


def make_data():
    return make_blobs(3000, n_features=D, centers=K, cluster_std=[1.0, 1.5, 0.5, 2.0], random_state=0)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_data()
    return X + 10.0, y


def start(X: np.ndarray, covariance_type: str, seed: int = 0) -> dict:
    """A rough common start: a random row of each blob as means, unit precisions, equal weights.

    One row per blob, so that both fits head for the same (global) optimum.
    """
    rng = np.random.default_rng(seed)
    y = make_data()[1]
    means = X[[rng.choice(np.flatnonzero(y[: len(X)] == j)) for j in range(K)]]
    precisions = {"diag": np.ones((K, D)), "spherical": np.ones(K), "full": np.tile(np.eye(D), (K, 1, 1))}
    return {"weights_init": np.full(K, 1.0 / K), "means_init": means,
            "precisions_init": precisions[covariance_type]}


def copy_params(ours: GaussianMixture) -> SkGaussianMixture:
    """A scikit-learn GaussianMixture holding our fitted parameters."""
    sk = SkGaussianMixture(ours.n_components, covariance_type=ours.covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "n_features_in_"):
        setattr(sk, name, getattr(ours, name))
    sk.converged_ = True
    return sk


def match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Permutation of b's rows nearest to a's rows (label-numbering invariant comparisons)."""
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    _, col = linear_sum_assignment(cost)
    return col


CHUNKS = {"one-chunk": 3000, "uneven": (1100, 1, 899, 1000)}


@pytest.fixture(params=["sync", "threads", "distributed"])
def scheduler(request):
    if request.param == "distributed":
        yield request.getfixturevalue("client")
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("chunks", list(CHUNKS.values()), ids=list(CHUNKS))
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_matches_sklearn_from_the_same_init(blobs, covariance_type, chunks, dtype, scheduler):
    X, y = blobs
    X = X.astype(dtype)
    init = start(X, covariance_type)
    sk = SkGaussianMixture(K, covariance_type=covariance_type, **init).fit(X)
    gm = GaussianMixture(K, covariance_type=covariance_type, **init).fit(da.from_array(X, chunks=(chunks, -1)))
    # scikit-learn computes in the input dtype; we always compute in float64
    tight = dtype == np.float64
    assert gm.score(X) == pytest.approx(sk.score(X), rel=1e-9 if tight else 1e-5)
    assert gm.score(X) == pytest.approx(sk.score(X), rel=1e-2)  # the contract; the line above is what we see
    assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-9 if tight else 1e-5)
    np.testing.assert_allclose(gm.weights_, sk.weights_, atol=1e-8 if tight else 1e-5)
    np.testing.assert_allclose(gm.means_, sk.means_, atol=1e-7 if tight else 1e-3)
    np.testing.assert_allclose(gm.covariances_, sk.covariances_, rtol=1e-7 if tight else 1e-3, atol=1e-9)
    np.testing.assert_allclose(gm.precisions_, sk.precisions_, rtol=1e-6 if tight else 1e-3, atol=1e-9)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).shape == getattr(sk, name).shape, name
        assert getattr(gm, name).dtype == dtype, name
    assert gm.converged_ and sk.converged_
    assert abs(gm.n_iter_ - sk.n_iter_) <= 1
    assert isinstance(gm.labels_, da.Array) and gm.labels_.dtype == np.int32
    labels = gm.labels_.compute()
    assert adjusted_rand_score(labels, sk.predict(X)) >= 0.95
    assert adjusted_rand_score(labels, y) >= 0.95
    pred = gm.predict(da.from_array(X, chunks=1000))
    assert isinstance(pred, da.Array)
    np.testing.assert_array_equal(pred.compute(), labels)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_default_kmeans_init_finds_the_blobs(blobs, covariance_type):
    X, y = blobs
    gm = GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(da.from_array(X, chunks=1000))
    sk = SkGaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(X)
    assert gm.converged_
    assert adjusted_rand_score(gm.labels_.compute(), y) >= 0.95
    assert gm.score(X) == pytest.approx(sk.score(X), rel=1e-3)
    perm = match(gm.means_, sk.means_)
    np.testing.assert_allclose(gm.means_, sk.means_[perm], atol=1e-2)
    np.testing.assert_allclose(gm.weights_, sk.weights_[perm], atol=1e-3)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random"])
def test_every_init_runs_and_em_never_decreases_the_likelihood(blobs, init_params):
    X, y = blobs
    gm = GaussianMixture(K, init_params=init_params, random_state=0, max_iter=300).fit(da.from_array(X, chunks=700))
    lb = np.array(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
    assert gm.lower_bound_ == lb[-1] and gm.n_iter_ == len(lb)
    assert np.isfinite(gm.score(X))
    if init_params != "random":  # random responsibilities may merge two blobs; the others must not
        assert adjusted_rand_score(gm.labels_.compute(), y) >= 0.95


def test_same_random_state_same_fit(blobs):
    X, _ = blobs
    a = GaussianMixture(K, random_state=3).fit(da.from_array(X, chunks=1000))
    b = GaussianMixture(K, random_state=3).fit(da.from_array(X, chunks=1000))
    np.testing.assert_array_equal(a.means_, b.means_)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_probabilities_scores_and_criteria_equal_sklearn_on_the_same_params(blobs, covariance_type):
    X, _ = blobs
    gm = GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(X)
    sk = copy_params(gm)
    np.testing.assert_allclose(gm.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(gm.score_samples(X), sk.score_samples(X), rtol=1e-9)
    np.testing.assert_array_equal(gm.predict(X), sk.predict(X))
    assert gm.score(X) == pytest.approx(sk.score(X), rel=1e-12)
    assert gm.bic(X) == pytest.approx(sk.bic(X), rel=1e-12)
    assert gm.aic(X) == pytest.approx(sk.aic(X), rel=1e-12)
    # and the formulas themselves
    n, p = X.shape[0], sk._n_parameters()
    assert gm._n_parameters() == p
    assert gm.bic(X) == pytest.approx(-2 * gm.score(X) * n + p * math.log(n), rel=1e-12)
    assert gm.aic(X) == pytest.approx(-2 * gm.score(X) * n + 2 * p, rel=1e-12)


def test_dask_in_lazy_dask_out(blobs):
    X, _ = blobs
    Xd = da.from_array(X, chunks=800)
    gm = GaussianMixture(K, random_state=0).fit(Xd)
    proba, ll, pred = gm.predict_proba(Xd), gm.score_samples(Xd), gm.predict(Xd)
    assert all(isinstance(a, da.Array) for a in (proba, ll, pred))
    assert proba.chunks == (Xd.chunks[0], (K,)) and ll.chunks == (Xd.chunks[0],)
    np.testing.assert_allclose(proba.sum(axis=1).compute(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ll.compute(), gm.score_samples(X), rtol=1e-12)
    assert gm.score(Xd) == pytest.approx(float(ll.mean().compute()), rel=1e-12)
    np.testing.assert_array_equal(pred.compute(), gm.labels_.compute())


def test_numpy_in_numpy_out(blobs):
    X, _ = blobs
    gm = GaussianMixture(K, random_state=0)
    labels = gm.fit_predict(X)
    assert isinstance(labels, np.ndarray) and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, gm.labels_)
    np.testing.assert_array_equal(gm.predict(X), labels)
    assert isinstance(gm.predict_proba(X[:5]), np.ndarray) and gm.predict_proba(X[:5]).shape == (5, K)
    assert isinstance(gm.score_samples(X[:5]), np.ndarray)
    assert gm.n_features_in_ == D


def test_streaming_equals_persisted(blobs):
    X, _ = blobs
    Xd = da.from_array(X, chunks=1000)
    a = GaussianMixture(K, random_state=0, persist=True).fit(Xd)
    b = GaussianMixture(K, random_state=0, persist=False).fit(Xd)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    assert a.n_iter_ == b.n_iter_


def test_convergence_flags(blobs):
    X, _ = blobs
    init = start(X, "diag")
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        gm = GaussianMixture(K, max_iter=1, tol=0.0, **init).fit(X)
    assert not gm.converged_ and gm.n_iter_ == 1 and len(gm.lower_bounds_) == 1
    sk = SkGaussianMixture(K, covariance_type="diag", max_iter=1, tol=0.0, **init)
    with pytest.warns(ConvergenceWarning):
        sk.fit(X)
    np.testing.assert_allclose(gm.means_, sk.means_, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gm0 = GaussianMixture(K, max_iter=0, **init).fit(X)
    assert not gm0.converged_ and gm0.n_iter_ == 0 and gm0.lower_bound_ == -np.inf
    np.testing.assert_allclose(gm0.means_, init["means_init"])
    np.testing.assert_allclose(gm0.precisions_, init["precisions_init"])
    np.testing.assert_allclose(gm0.covariances_, 1.0 / init["precisions_init"])


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_one_component_is_the_sample_mean_and_covariance(blobs, covariance_type):
    X, _ = blobs
    gm = GaussianMixture(1, covariance_type=covariance_type, reg_covar=1e-6).fit(da.from_array(X, chunks=700))
    assert gm.converged_ and gm.n_iter_ <= 2
    np.testing.assert_allclose(gm.weights_, [1.0])
    np.testing.assert_allclose(gm.means_[0], X.mean(0), rtol=1e-12)
    expected = {
        "diag": X.var(0) + 1e-6,
        "spherical": X.var(0).mean() + 1e-6,
        "full": np.cov(X.T, bias=True) + 1e-6 * np.eye(D),
    }[covariance_type]
    np.testing.assert_allclose(gm.covariances_[0], expected, rtol=1e-10)
    assert (gm.labels_.compute() == 0).all()


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_duplicate_rows_stay_finite_thanks_to_reg_covar(covariance_type):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(2, 3)) * 5
    X = np.repeat(rows, 200, axis=0)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(da.from_array(X, chunks=150))
    cov = gm.covariances_
    diag = np.diagonal(cov, axis1=1, axis2=2) if covariance_type == "full" else cov
    np.testing.assert_allclose(diag, 1e-6, rtol=1e-6)
    assert np.all(np.isfinite(gm.precisions_cholesky_))
    assert np.isfinite(gm.score(X))
    sk = SkGaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    assert gm.score(X) == pytest.approx(sk.score(X), rel=1e-6)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0, random_state=0).fit(X)


@pytest.mark.parametrize("dtype,offset", [(np.float64, 1e6), (np.float32, 1e4)], ids=["f64-1e6", "f32-1e4"])
def test_large_offset_keeps_precision(blobs, dtype, offset):
    """Centring by the data mean keeps the fit exact far from the origin.

    The reference is scikit-learn on the very same points shifted back to the origin in
    float64 (scikit-learn's expanded formulas lose digits on the raw, offset data).
    """
    X, y = blobs
    Xo = (X + offset).astype(dtype)
    X0 = Xo.astype(np.float64) - offset
    init = start(X0, "diag")
    sk = SkGaussianMixture(K, covariance_type="diag", **init).fit(X0)
    init_o = dict(init, means_init=init["means_init"] + offset)
    gm = GaussianMixture(K, covariance_type="diag", **init_o).fit(da.from_array(Xo, chunks=1000))
    assert gm.score(Xo) == pytest.approx(sk.score(X0), rel=1e-7)
    np.testing.assert_allclose(gm.means_.astype(np.float64) - offset, sk.means_,
                               atol=1e-6 if dtype == np.float64 else 2e-3)
    np.testing.assert_allclose(gm.covariances_, sk.covariances_, rtol=1e-6)
    assert adjusted_rand_score(gm.labels_.compute(), y) >= 0.95


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 599), min_size=0, max_size=4, unique=True))
def test_chunking_does_not_change_the_fit(blobs, cuts):
    X = blobs[0][:600]
    bounds = [0, *sorted(cuts), 600]
    chunks = tuple(b - a for a, b in itertools.pairwise(bounds))
    init = start(X, "diag")
    with dask.config.set(scheduler="sync"):
        ref = GaussianMixture(K, **init).fit(X)
        gm = GaussianMixture(K, **init).fit(da.from_array(X, chunks=(chunks, -1)))
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-10)
    assert gm.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-12)


# -- errors ---------------------------------------------------------------------
def test_too_few_samples():
    with pytest.raises(ValueError, match="Expected n_samples >= n_components but got n_components = 5, n_samples = 3"):
        GaussianMixture(5).fit(np.ones((3, 2)))
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        GaussianMixture(1).fit(np.ones((1, 2)))


@pytest.mark.parametrize("params, match", [
    ({"covariance_type": "tied"}, "'covariance_type' parameter of GaussianMixture must be a str among"),
    ({"init_params": "random_from_data"}, "'init_params' parameter"),
    ({"n_components": 0}, "'n_components' parameter of GaussianMixture must be an int in the range"),
    ({"reg_covar": -1.0}, "'reg_covar' parameter"),
    ({"persist": "sometimes"}, "'persist' parameter"),
], ids=["covariance_type", "init_params", "n_components", "reg_covar", "persist"])
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**params).fit(np.random.default_rng(0).normal(size=(20, 2)))


@pytest.mark.parametrize("params, match", [
    ({"weights_init": [0.5, 0.6]}, r"'weights_init' should be normalized, but got sum\(weights_init\) = 1.10000"),
    ({"weights_init": [1.5, -0.5]}, r"'weights_init' should be in the range \[0, 1\]"),
    ({"weights_init": [1.0]}, r"'weights_init' should have the shape of \(2,\), but got \(1,\)"),
    ({"means_init": np.zeros((2, 3))}, r"'means_init' should have the shape of \(2, 2\), but got \(2, 3\)"),
    ({"precisions_init": np.array([[1.0, 1.0], [1.0, -1.0]])}, r"'diag' precisions\) should be positive"),
    ({"covariance_type": "full", "precisions_init": np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])},
     r"symmetric, positive-definite 'full' precision matrices, but precisions_init\[1\] is not"),
], ids=["weights-sum", "weights-range", "weights-shape", "means-shape", "diag-negative", "full-not-pd"])
def test_bad_initial_parameters(params, match):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, **params).fit(X)


def test_unfitted_and_wrong_width(blobs):
    X, _ = blobs
    with pytest.raises(NotFittedError):
        GaussianMixture(2).predict(X)
    gm = GaussianMixture(2, random_state=0).fit(X[:200])
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 6 features as input."):
        gm.predict(X[:5, :3])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        gm.predict(da.from_array(X, chunks=500)[da.from_array(X[:, 0] > 10, chunks=500)])


def test_fit_does_not_change_the_parameters(blobs):
    X, _ = blobs
    init = start(X, "diag")
    gm = GaussianMixture(K, **init)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in gm.get_params().items()}
    gm.fit(X)
    for k, v in gm.get_params().items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, before[k])
        else:
            assert v == before[k]


# -- scikit-learn's own estimator checks, numpy path ------------------------------
@parametrize_with_checks(
    [GaussianMixture(n_components=2, random_state=0, max_iter=20)],
    # none fail; scikit-learn skips check_array_api_input without SCIPY_ARRAY_API
    expected_failed_checks=lambda est: {},
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
