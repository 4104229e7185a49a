"""PCA and L2 normalisation on dask arrays, against scikit-learn's in-memory reference.

The data are uncentred (mean offset +50) low-rank-plus-noise, so any loss of
digits to cancellation in the covariance shows up in the small eigenvalues.
The reference is ``sklearn.decomposition.PCA(svd_solver="full")`` on the same
values in float64; float32 results are held to float32-sized tolerances.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA as SkPCA
from sklearn.preprocessing import normalize as sk_normalize
from sklearn.utils.estimator_checks import parametrize_with_checks

from cluster_lib._pca import PCA, chunk_stats, combine_stats, flip_signs
from cluster_lib._preprocess import L2Normalizer, Preprocessor, l2_normalize

RANK = 4
N, D = 2400, 24

# dtype -> tolerances: variance of the signal components (relative), of all
# components (relative: float32 products cost the small eigenvalues ~1e-5),
# signal components (absolute), projections and reconstructions (absolute)
TOL = {
    np.float64: {"var_top": 1e-10, "var_all": 1e-9, "comp": 1e-9, "proj": 1e-8},
    np.float32: {"var_top": 1e-5, "var_all": 1e-3, "comp": 1e-4, "proj": 2e-3},
}


def make_data(n: int = N, d: int = D, *, offset: float = 50.0, seed: int = 0,
              dtype: type = np.float64) -> np.ndarray:
    """Rank-``RANK`` signal with well separated variances + anisotropic noise + a mean offset."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, RANK)))[0].T
    latent = rng.standard_normal((n, RANK)) * np.array([12.0, 8.0, 5.0, 3.0])
    noise = rng.standard_normal((n, d)) * np.linspace(0.2, 1.0, d)
    return (latent @ basis + noise + offset + rng.standard_normal(d)).astype(dtype)


CHUNKINGS = {
    "numpy": None,
    "one-chunk": (N, D),
    "uneven": ((700, 3, 1100, 597), (10, 14)),  # a 3-row chunk, and columns split
}


def as_input(X: np.ndarray, chunking: str):
    chunks = CHUNKINGS[chunking]
    return X if chunks is None else da.from_array(X, chunks=chunks)


@pytest.fixture(params=["sync", "distributed"])
def scheduler(request):
    """Run the test on dask's synchronous scheduler or on the shared 2-worker LocalCluster."""
    if request.param == "sync":
        with dask.config.set(scheduler="sync"):
            yield request.param
    else:
        request.getfixturevalue("client")
        yield request.param


def reference(X: np.ndarray, **kwargs) -> SkPCA:
    return SkPCA(svd_solver="full", **kwargs).fit(X.astype(np.float64))


# --------------------------------------------------------------------------- against scikit-learn
@pytest.mark.parametrize("solver", ["covariance", "dask-ml"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS), ids=list(CHUNKINGS))
def test_fit_matches_sklearn(chunking, dtype, solver, scheduler):
    X = make_data(dtype=dtype)
    tol = TOL[dtype]
    ref = reference(X)
    pca = PCA(solver=solver).fit(as_input(X, chunking))

    assert pca.n_components_ == ref.n_components_ == D
    assert (pca.n_samples_, pca.n_features_in_) == (N, D)
    for name in ["components_", "explained_variance_", "explained_variance_ratio_",
                 "singular_values_", "mean_"]:
        value = getattr(pca, name)
        assert isinstance(value, np.ndarray) and value.dtype == dtype, name
    np.testing.assert_allclose(pca.mean_, ref.mean_, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(pca.explained_variance_[:RANK], ref.explained_variance_[:RANK],
                               rtol=tol["var_top"])
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=tol["var_all"])
    np.testing.assert_allclose(pca.explained_variance_ratio_, ref.explained_variance_ratio_,
                               rtol=tol["var_all"])
    np.testing.assert_allclose(pca.singular_values_, ref.singular_values_, rtol=tol["var_all"])
    # same sign convention as scikit-learn: equal, not just equal up to sign
    np.testing.assert_allclose(pca.components_[:RANK], ref.components_[:RANK], atol=tol["comp"])
    if dtype == np.float64:
        np.testing.assert_allclose(pca.components_, ref.components_, atol=1e-8)
    assert pca.noise_variance_ == ref.noise_variance_ == 0.0


@pytest.mark.parametrize("solver", ["covariance", "dask-ml"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS), ids=list(CHUNKINGS))
def test_transform_matches_sklearn(chunking, dtype, solver, scheduler):
    X = make_data(dtype=dtype)
    k = RANK + 1
    tol = TOL[dtype]
    ref = reference(X, n_components=k)
    Xin = as_input(X, chunking)
    pca = PCA(n_components=k, solver=solver)
    Z = pca.fit_transform(Xin)

    assert pca.n_components_ == k
    np.testing.assert_allclose(pca.noise_variance_, ref.noise_variance_, rtol=tol["var_all"])
    assert type(Z) is type(Xin) and Z.dtype == dtype and Z.shape == (N, k)
    if isinstance(Xin, da.Array):
        assert Z.chunks == (Xin.chunks[0], (k,))  # lazy, keeps the row chunks
    Z_ref = ref.transform(X.astype(np.float64))
    np.testing.assert_allclose(np.asarray(Z)[:, :RANK], Z_ref[:, :RANK], atol=tol["proj"] * 10)
    np.testing.assert_allclose(np.asarray(pca.transform(X)), np.asarray(Z), atol=tol["proj"])

    back = pca.inverse_transform(Z)
    assert type(back) is type(Xin) and back.dtype == dtype and back.shape == (N, D)
    if isinstance(Xin, da.Array):
        assert back.chunks[0] == Xin.chunks[0]
    np.testing.assert_allclose(np.asarray(back), ref.inverse_transform(Z_ref),
                               atol=tol["proj"] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_whiten_matches_sklearn(dtype):
    X = make_data(dtype=dtype)
    ref = reference(X, n_components=RANK, whiten=True)
    with dask.config.set(scheduler="sync"):
        pca = PCA(n_components=RANK, whiten=True).fit(as_input(X, "uneven"))
        Z = pca.transform(as_input(X, "uneven")).compute()
        back = pca.inverse_transform(Z)
    Z_ref = ref.transform(X.astype(np.float64))
    np.testing.assert_allclose(Z, Z_ref, atol=TOL[dtype]["proj"])
    np.testing.assert_allclose(Z.var(axis=0, ddof=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(back, ref.inverse_transform(Z_ref), atol=TOL[dtype]["proj"] * 10)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99, 0.999999])
def test_fractional_n_components_matches_sklearn(fraction):
    X = make_data()
    ref = reference(X, n_components=fraction)
    pca = PCA(n_components=fraction).fit(X)
    assert pca.n_components_ == ref.n_components_
    np.testing.assert_allclose(pca.noise_variance_, ref.noise_variance_, rtol=1e-9)


def test_wide_data_matches_sklearn():
    """n_samples < n_features: at most n_samples components, as in scikit-learn."""
    X = make_data(n=15, d=D)
    ref = reference(X)
    with dask.config.set(scheduler="sync"):
        pca = PCA().fit(da.from_array(X, chunks=(4, D)))
    assert pca.n_components_ == ref.n_components_ == 15
    np.testing.assert_allclose(pca.explained_variance_[:14], ref.explained_variance_[:14], rtol=1e-9)
    np.testing.assert_allclose(pca.components_[:14], ref.components_[:14], atol=1e-8)


def test_float32_accuracy_with_large_offset():
    """Centring each chunk first keeps float32 products accurate even with a mean of 1000."""
    X = make_data(offset=1000.0, dtype=np.float32)
    ref = reference(X)
    with dask.config.set(scheduler="sync"):
        pca = PCA().fit(da.from_array(X, chunks=(500, D)))
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-3)
    # the textbook X^T X - n m m^T in float32 gets the small eigenvalues wrong by far more
    m = X.mean(axis=0, dtype=np.float64)
    naive = (X.T @ X).astype(np.float64) - N * np.outer(m, m)
    naive_ev = np.linalg.eigvalsh(naive / (N - 1))[::-1]
    assert np.abs(naive_ev / ref.explained_variance_ - 1).max() > 1e-2


# --------------------------------------------------------------------------- kernels
def test_chunk_stats_pool_exactly():
    X = make_data(n=3000, d=7)
    edges = [0, 1, 2, 500, 501, 2999, 3000]
    parts = [chunk_stats(X[a:b]) for a, b in zip(edges[:-1], edges[1:])] + [chunk_stats(X[:0])]
    n, mean, scatter = combine_stats([combine_stats(parts[:3]), combine_stats(parts[3:])])
    assert n == 3000
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-14)
    np.testing.assert_allclose(scatter, np.cov(X.T) * (n - 1), rtol=1e-10, atol=1e-9)


def test_flip_signs_makes_largest_entry_positive():
    C = np.array([[0.1, -0.9, 0.4], [0.0, 0.0, 0.0], [0.5, 0.2, 0.1]])
    F = flip_signs(C)
    np.testing.assert_array_equal(F, [[-0.1, 0.9, -0.4], [0.0, 0.0, 0.0], [0.5, 0.2, 0.1]])


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"solver": "svd"}, "The 'solver' parameter of PCA must be a str among"),
        ({"n_components": 0}, "The 'n_components' parameter of PCA must be"),
        ({"n_components": 1.5}, "The 'n_components' parameter of PCA must be"),
        ({"n_components": "mle"}, "The 'n_components' parameter of PCA must be"),
        ({"whiten": "yes"}, "The 'whiten' parameter of PCA must be"),
    ],
    ids=["solver", "zero-components", "fraction>1", "mle", "whiten"],
)
def test_invalid_params(params, match):
    # scikit-learn's InvalidParameterError is a ValueError (and a TypeError)
    with pytest.raises(ValueError, match=match):
        PCA(**params).fit(make_data(n=50))


def poisoned(n: int, d: int, chunk: int) -> da.Array:
    """A dask array whose chunks raise if anything computes them."""
    def boom(block):
        raise AssertionError("computed a chunk")
    return da.zeros((n, d), chunks=(chunk, d)).map_blocks(boom, dtype=np.float64)


def test_too_many_components_fails_before_any_pass():
    with pytest.raises(ValueError, match=r"^n_components=300 should be <= n_features=200\.$"):
        PCA(n_components=300).fit(poisoned(1000, 200, 100))
    with pytest.raises(ValueError, match=r"^n_components=30 should be <= n_samples=20\.$"):
        PCA(n_components=30).fit(make_data(n=20, d=D + 20))


@pytest.mark.parametrize("solver", ["covariance", "dask-ml"])
def test_unknown_chunk_sizes(solver):
    X = da.from_array(make_data(n=20, d=D + 20), chunks=(5, D + 20))
    X = X[X[:, 0] > -np.inf]  # unknown row chunk sizes
    assert np.isnan(X.shape[0])
    with dask.config.set(scheduler="sync"):
        with pytest.raises(ValueError, match=r"n_components=30 should be <= n_samples=20\."):
            PCA(n_components=30, solver=solver).fit(X)
        pca = PCA(n_components=3, solver=solver).fit(X)
        assert pca.n_samples_ == 20
        assert pca.transform(X).compute().shape == (20, 3)


def test_one_sample_is_rejected():
    with pytest.raises(ValueError, match="n_samples=1 should be >= 2"):
        PCA().fit(da.ones((1, 5), chunks=(1, 5)))


def test_nan_in_dask_input_is_rejected():
    X = make_data(n=100)
    X[57, 3] = np.nan
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match="NaN or infinity"):
        PCA().fit(da.from_array(X, chunks=(25, D)))


def test_transform_checks_feature_count():
    pca = PCA(2).fit(make_data(n=100))
    with pytest.raises(ValueError, match="X has 5 features, but PCA is expecting 24 features"):
        pca.transform(da.zeros((10, 5)))
    with pytest.raises(ValueError, match="X has 3 features, but PCA has n_components_=2"):
        pca.inverse_transform(np.zeros((10, 3)))


def test_feature_names_out():
    pca = PCA(3).fit(make_data(n=100))
    assert list(pca.get_feature_names_out()) == ["pca0", "pca1", "pca2"]


# --------------------------------------------------------------------------- dask-ml defect
@pytest.mark.xfail(
    strict=True, raises=AttributeError,
    reason="dask-ml #1023: PCA(svd_solver='randomized').fit(X).transform(X) raises AttributeError "
           "'power_iteration_normalizer' with scikit-learn >= 1.8; PCA(solver='dask-ml') never calls "
           "dask-ml's transform. When this XPASSes, the defect is fixed upstream.",
)
def test_dask_ml_randomized_fit_then_transform_upstream():
    from dask_ml.decomposition import PCA as DaskMLPCA

    X = da.from_array(make_data(n=600), chunks=(200, D))
    with dask.config.set(scheduler="sync"):
        est = DaskMLPCA(n_components=3, svd_solver="randomized", random_state=0).fit(X)
        assert est.transform(X).compute().shape == (600, 3)


# --------------------------------------------------------------------------- scikit-learn conformance
@parametrize_with_checks(
    [PCA(), PCA(n_components=2, whiten=True), PCA(n_components=0.8), PCA(solver="dask-ml"),
     L2Normalizer(), Preprocessor(pca=2, normalize=True)],
)
def test_sklearn_compatible(estimator, check):
    """scikit-learn's estimator checks, on the numpy-input path (no check is skipped by us)."""
    with dask.config.set(scheduler="sync"):
        check(estimator)


# --------------------------------------------------------------------------- properties
@st.composite
def chunked_arrays(draw):
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 9))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=4))) if n > 1 else []
    rows = tuple(b - a for a, b in zip([0, *cuts], [*cuts, n]))
    cols = draw(st.sampled_from([(d,), (1, d - 1) if d > 1 else (d,)]))
    seed = draw(st.integers(0, 2**16))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    k = draw(st.one_of(st.none(), st.integers(1, min(n, d))))
    X = np.random.default_rng(seed).standard_normal((n, d)) * 3 + 50
    return X.astype(dtype), (rows, cols), k


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_arrays())
def test_shapes_and_chunks_for_any_chunking(case):
    X, chunks, k = case
    n, d = X.shape
    with dask.config.set(scheduler="sync"):
        pca = PCA(n_components=k).fit(da.from_array(X, chunks=chunks))
        Z = pca.transform(da.from_array(X, chunks=chunks))
        back = pca.inverse_transform(Z)
        kk = min(n, d) if k is None else k
        assert pca.components_.shape == (kk, d) and pca.explained_variance_.shape == (kk,)
        assert Z.shape == (n, kk) and Z.chunks == (chunks[0], (kk,)) and Z.dtype == X.dtype
        assert back.shape == (n, d) and back.chunks[0] == chunks[0] and back.dtype == X.dtype
        # agrees with the numpy path on chunking-invariant quantities (eigenvectors of
        # nearly equal eigenvalues are not, so compare eigenvalues and projection variances)
        Zc = Z.compute()
        top = float(pca.explained_variance_[0]) if kk else 1.0
        atol = (1e-4 if X.dtype == np.float32 else 1e-10) * top
        np.testing.assert_allclose(pca.explained_variance_, PCA(n_components=k).fit(X).explained_variance_,
                                   atol=atol)
        np.testing.assert_allclose(Zc.astype(np.float64).var(axis=0, ddof=1), pca.explained_variance_,
                                   atol=10 * atol)
        if k is None:  # every component kept: the round trip is exact
            np.testing.assert_allclose(back.compute(), X, atol=1e-3 if X.dtype == np.float32 else 1e-9)


# --------------------------------------------------------------------------- L2 normalisation
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS), ids=list(CHUNKINGS))
def test_l2_normalize_matches_sklearn(chunking, dtype):
    X = make_data(dtype=dtype, offset=0.0)
    X[[5, 1000]] = 0.0
    Xin = as_input(X, chunking)
    out = l2_normalize(Xin)
    assert type(out) is type(Xin) and out.dtype == dtype
    if isinstance(Xin, da.Array):
        assert out.chunks == (Xin.chunks[0], (D,))
    with dask.config.set(scheduler="sync"):
        out = np.asarray(out)
    np.testing.assert_allclose(out, sk_normalize(X.astype(np.float64)),
                               atol=1e-6 if dtype == np.float32 else 1e-14)
    assert not out[[5, 1000]].any()  # zero rows stay zero (no NaN)
    norms = np.linalg.norm(np.delete(out, [5, 1000], axis=0).astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_l2_normalize_integers_become_float64():
    assert l2_normalize(np.array([[3, 4]])).dtype == np.float64
    np.testing.assert_allclose(l2_normalize(da.from_array(np.array([[3, 4]]))).compute(), [[0.6, 0.8]])


def test_l2_normalizer_estimator():
    X = da.from_array(make_data(n=100, dtype=np.float32), chunks=(30, D))
    out = L2Normalizer().fit_transform(X)
    assert isinstance(out, da.Array) and out.dtype == np.float32
    with dask.config.set(scheduler="sync"):
        np.testing.assert_allclose(np.linalg.norm(out.compute(), axis=1), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- Preprocessor
def test_preprocessor_pca_at_most_n_dims_then_normalize():
    X = da.from_array(make_data(dtype=np.float32), chunks=(600, D))
    with dask.config.set(scheduler="sync"):
        prep = Preprocessor(pca=200, normalize=True).fit(X)  # 200 > 24 features: keeps 24
        assert prep.pca_.n_components_ == D
        Z = prep.transform(X)
        assert isinstance(Z, da.Array) and Z.shape == (N, D) and Z.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(Z.compute(), axis=1), 1.0, rtol=1e-5)
        Z3 = Preprocessor(pca=3).fit_transform(X).compute()
    Xn = X.compute().astype(np.float64)
    np.testing.assert_allclose(Z3, reference(Xn, n_components=3).transform(Xn), atol=2e-3)


def test_preprocessor_without_pca_only_normalizes():
    X = make_data(n=50)
    np.testing.assert_allclose(Preprocessor(normalize=True).fit_transform(X), sk_normalize(X))
    np.testing.assert_array_equal(Preprocessor().fit_transform(X), X)
