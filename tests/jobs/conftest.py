from __future__ import annotations

import pytest

from storage import ingest
from storage.synthetic import make_crops


@pytest.fixture(scope="session")
def crop_store(tmp_path_factory):
    """A small store of the synthetic crops' four descriptors (600 rows)."""
    root = tmp_path_factory.mktemp("crops")
    crops = make_crops(root / "data", 600, seed=1)
    for name, path in crops.descriptors.items():
        ingest(path, index=crops.index, store=root / "store", name=name, batch_id="b1")
    return root / "store"


def write_spec(path, store, **over):
    import yaml

    spec = {
        "store": str(store),
        "runs": "runs",
        "descriptors": ["color", "type"],
        "preprocess": {"pca": 20},
        "methods": [{"method": "kmeans", "n_clusters": 7}],
        "scoring": {"silhouette_sample": 500},
        "cluster": {"n_workers": 1, "memory_limit": "1GiB"},
    }
    spec.update(over)
    path.write_text(yaml.safe_dump(spec))
    return path
