"""The method registry that job specs use."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from cluster_lib._registry import estimator_class, make_estimator, method_id, method_names, split_entry

EXAMPLES = {
    "kmeans": {"n_clusters": 3},
    "minibatch_kmeans": {"n_clusters": 3, "batch_size": 256},
    "gmm": {"n_components": 3, "covariance_type": "diag"},
    "dbscan": {"eps": 1.5, "min_samples": 5},
    "agglomerative": {"n_clusters": 3, "linkage": "ward"},
}


def test_registry_names_every_method():
    assert method_names() == sorted(EXAMPLES)


@pytest.mark.parametrize("method", sorted(EXAMPLES))
def test_every_method_fits_blobs(method):
    X, y = make_blobs(900, n_features=5, centers=3, cluster_std=0.5, random_state=0)
    est = make_estimator(method, EXAMPLES[method], defaults={"random_state": 0})
    labels = est.fit_predict(X)
    assert adjusted_rand_score(y, np.asarray(labels)) > 0.95


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'hdbscan'; expected one of: agglomerative, dbscan, gmm"):
        make_estimator("hdbscan", {})


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"method 'kmeans' has no parameter 'k'; valid parameters: .*n_clusters"):
        make_estimator("kmeans", {"k": 8})


def test_bad_value_is_refused_before_fit():
    with pytest.raises(ValueError, match=r"method 'kmeans': The 'n_clusters' parameter"):
        make_estimator("kmeans", {"n_clusters": -1})


def test_defaults_apply_only_where_the_estimator_has_them():
    est = make_estimator("kmeans", {"n_clusters": 4}, defaults={"random_state": 7, "not_a_param": 1})
    assert est.random_state == 7 and est.n_clusters == 4
    assert make_estimator("kmeans", {"random_state": 1}, defaults={"random_state": 7}).random_state == 1


def test_method_ids_follow_the_design():
    assert method_id({"method": "kmeans"}) == "kmeans"
    assert method_id({"method": "dbscan", "metric": "cosine", "eps": "auto"}) == "dbscan-cosine"
    assert method_id({"method": "dbscan", "metric": "euclidean"}) == "dbscan-euclidean"
    assert method_id({"method": "kmeans", "id": "k100"}) == "k100"
    assert split_entry({"method": "gmm", "id": "g", "n_components": 8}) == ("gmm", {"n_components": 8})
    with pytest.raises(ValueError, match="needs a 'method' key"):
        split_entry({"n_clusters": 3})
    assert estimator_class("kmeans").__name__ == "KMeans"
