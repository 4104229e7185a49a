"""Property tests: whatever the shapes, chunking and batch split, what goes in comes out."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import DescriptorStore, ingest

from .conftest import write_index


@st.composite
def batches(draw):
    d = draw(st.integers(1, 17))
    sizes = draw(st.lists(st.integers(1, 90), min_size=1, max_size=4))
    chunk_rows = draw(st.integers(1, 70))
    fmt = draw(st.sampled_from([".npy", ".npz", ".csv"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return d, sizes, chunk_rows, fmt, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_round_trip_any_shape_and_chunking(case):
    d, sizes, chunk_rows, fmt, seed = case
    rng = np.random.default_rng(seed)
    tmp = Path(tempfile.mkdtemp(prefix="ivc-prop-"))
    try:
        expected, images, colors = [], [], []
        for k, n in enumerate(sizes):
            # values with exact decimal text forms, so CSV round trips bit for bit
            X = (rng.integers(-10**6, 10**6, size=(n, d)) / 1024).astype(np.float32)
            path = tmp / f"b{k}{fmt}"
            if fmt == ".npy":
                np.save(path, X)
            elif fmt == ".npz":
                np.savez(path, X=X)
            else:
                np.savetxt(path, X, delimiter=",", fmt="%.10g")
            col = [f"c{k}-{i % 3}" for i in range(n)]
            write_index(tmp / f"i{k}.csv", n, f"batch{k}", color=col)
            res = ingest(path, index=tmp / f"i{k}.csv", store=tmp / "st", name="x", batch_id=f"b{k}",
                         chunk_rows=chunk_rows)
            assert res.status == "ingested"
            expected.append(X)
            images += [f"batch{k}/{i:06d}.png" for i in range(n)]
            colors += col
        s = DescriptorStore(tmp / "st")["x"]
        got = s.vectors().compute(scheduler="sync")
        np.testing.assert_array_equal(got, np.concatenate(expected))
        frame = s.read_index()
        assert list(frame["image"]) == images and list(frame["color"]) == colors
        assert [(b.start, b.stop) for b in s.batches] == list(
            zip(np.cumsum([0] + sizes[:-1]).tolist(), np.cumsum(sizes).tolist())
        )
        assert all(c == chunk_rows for c in s.vectors().chunks[0][:-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
