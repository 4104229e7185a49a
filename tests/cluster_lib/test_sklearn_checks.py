"""scikit-learn's own estimator checks, on the numpy-input path of each estimator."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from cluster_lib import KMeans, MiniBatchKMeans

EXPECTED_FAILURES = {
    "KMeans": {
        # k-means++ draws a random sample of rows, and repeating rows changes that
        # draw, so the initial centers (and label numbering) differ; scikit-learn's
        # own KMeans is exempted from this check for the same reason.
        "check_sample_weight_equivalence_on_dense_data": "random init depends on the rows, not only the weights",
    },
    "MiniBatchKMeans": {
        # the random init and the random batches depend on the rows, as in scikit-learn's own
        "check_sample_weight_equivalence_on_dense_data": "random init and batches depend on the rows",
    },
}


@parametrize_with_checks(
    [KMeans(n_clusters=3, random_state=0, max_iter=50), MiniBatchKMeans(n_clusters=3, random_state=0, max_iter=5)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {}),
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
