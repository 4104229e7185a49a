"""Clustering scores on dask arrays, exact and partition-wise.

Calinski-Harabasz and Davies-Bouldin are computed from per-chunk sufficient
statistics combined by a tree reduction (at most two passes over the data) and
equal scikit-learn's; the silhouette is scikit-learn's on a seeded sample of rows.
"""

from __future__ import annotations

from ._scores import (
    ClusterScores,
    calinski_harabasz_score,
    cluster_scores,
    davies_bouldin_score,
)
from ._silhouette import silhouette_score
from ._sizes import cluster_sizes

__all__ = [
    "ClusterScores",
    "calinski_harabasz_score",
    "cluster_scores",
    "cluster_sizes",
    "davies_bouldin_score",
    "silhouette_score",
]
