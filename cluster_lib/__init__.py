"""cluster_lib: clustering estimators, kernels and metrics on dask arrays (no file I/O)."""

from __future__ import annotations

from cluster_lib._agglomerative import (
    AgglomerativeClustering,
    linkage_matrix,
    weighted_linkage,
)
from cluster_lib._dbscan import DBSCAN
from cluster_lib._gmm import GaussianMixture
from cluster_lib._kmeans import KMeans, kmeans_init
from cluster_lib._minibatch import MiniBatchKMeans
from cluster_lib._pca import PCA
from cluster_lib._preprocess import L2Normalizer, Preprocessor, l2_normalize

__all__ = [
    "AgglomerativeClustering",
    "DBSCAN",
    "GaussianMixture",
    "KMeans",
    "L2Normalizer",
    "MiniBatchKMeans",
    "PCA",
    "Preprocessor",
    "kmeans_init",
    "l2_normalize",
    "linkage_matrix",
    "weighted_linkage",
]
