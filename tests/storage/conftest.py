from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest


def tree_digest(root: Path) -> dict[str, str]:
    """Every file (by content hash) and folder under ``root``: the store's exact state."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel + "/"] = "dir"
        for f in filenames:
            p = Path(dirpath) / f
            out[os.path.join(rel, f)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_index(path: Path, n: int, prefix: str = "img", **columns: list[str]) -> Path:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *columns])
        for i in range(n):
            w.writerow([f"{prefix}/{i:06d}.png", *(columns[c][i] for c in columns)])
    return path


@pytest.fixture
def make_batch(tmp_path):
    """Write descriptors and an index to files; returns (vectors path, index path)."""
    counter = iter(range(10**6))

    def make(X: np.ndarray, *, suffix: str = ".npy", prefix: str | None = None, **columns: list[str]):
        k = next(counter)
        d = tmp_path / f"in{k}"
        d.mkdir()
        vec = d / f"desc{suffix}"
        if suffix == ".npy":
            np.save(vec, X)
        elif suffix == ".npz":
            np.savez(vec, X=X)
        elif suffix == ".csv":
            np.savetxt(vec, X, delimiter=",", fmt="%.9g")
        else:
            raise ValueError(suffix)
        idx = write_index(d / "index.csv", X.shape[0], prefix or f"b{k}", **columns)
        return vec, idx

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
