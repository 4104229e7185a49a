"""Round trips, appends and idempotence of the descriptor store."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from storage import BadInputError, DescriptorStore, choose_chunk_rows, ingest

from .conftest import tree_digest, write_index


def _stored(store, name):
    s = DescriptorStore(store)[name]
    return s, s.vectors().compute(scheduler="sync"), s.read_index()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_round_trip(tmp_path, make_batch, rng, suffix):
    X = rng.standard_normal((777, 13)).astype(np.float32)
    colors = [f"c{i % 5}" for i in range(777)]
    vec, idx = make_batch(X, suffix=suffix, color=colors)
    res = ingest(vec, index=idx, store=tmp_path / "st", name="color", chunk_rows=100)
    assert res.status == "ingested" and res.n_rows == 777
    s, got, index = _stored(tmp_path / "st", "color")
    assert got.dtype == np.float32 and got.shape == (777, 13)
    np.testing.assert_array_equal(got, X)
    assert list(index["image"]) == [f"{vec.parent.name.replace('in', 'b')}/{i:06d}.png" for i in range(777)]
    assert list(index["color"]) == colors
    assert s.index_columns == ("image", "color")
    assert s.chunk_rows == 100 and s.vectors().chunks[0][:2] == (100, 100)


@pytest.mark.parametrize("layout", ["columns", "list"])
def test_round_trip_parquet(tmp_path, rng, layout):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is the optional parquet reader")
    import pyarrow.parquet as pq

    X = rng.standard_normal((300, 6)).astype(np.float32)
    if layout == "columns":
        table = pa.table({f"d{j}": X[:, j] for j in range(6)})
    else:
        table = pa.table({"v": pa.array(list(X), type=pa.list_(pa.float32(), 6))})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=64)
    idx = write_index(tmp_path / "i.csv", 300)
    ingest(tmp_path / "d.parquet", index=idx, store=tmp_path / "st", name="p", chunk_rows=50)
    _, got, _ = _stored(tmp_path / "st", "p")
    np.testing.assert_array_equal(got, X)


def test_integer_and_float64_inputs_become_float32(tmp_path, make_batch):
    X = np.arange(60, dtype=np.int64).reshape(20, 3)
    vec, idx = make_batch(X)
    ingest(vec, index=idx, store=tmp_path / "st", name="i")
    _, got, _ = _stored(tmp_path / "st", "i")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, X.astype(np.float32))


def test_fortran_ordered_npy(tmp_path, make_batch, rng):
    X = np.asfortranarray(rng.standard_normal((250, 7)).astype(np.float32))
    vec, idx = make_batch(X)
    ingest(vec, index=idx, store=tmp_path / "st", name="f", chunk_rows=64)
    np.testing.assert_array_equal(_stored(tmp_path / "st", "f")[1], X)


def test_append_extends_rows_and_records_batches(tmp_path, make_batch, rng):
    A = rng.standard_normal((130, 5)).astype(np.float32)
    B = rng.standard_normal((71, 5)).astype(np.float32)
    va, ia = make_batch(A, camera=["cam1"] * 130)
    vb, ib = make_batch(B, color=["red"] * 71)  # a column the first batch did not have
    st = tmp_path / "st"
    r1 = ingest(va, index=ia, store=st, name="reid", batch_id="night-1", chunk_rows=32)
    r2 = ingest(vb, index=ib, store=st, name="reid", batch_id="night-2")
    assert (r1.batch.start, r1.batch.stop) == (0, 130)
    assert (r2.batch.start, r2.batch.stop) == (130, 201)
    s, got, index = _stored(st, "reid")
    np.testing.assert_array_equal(got, np.concatenate([A, B]))
    assert [b.id for b in s.batches] == ["night-1", "night-2"]
    assert list(index["batch_id"]) == ["night-1"] * 130 + ["night-2"] * 71
    assert list(index["camera"]) == ["cam1"] * 130 + [""] * 71
    assert list(index["color"]) == [""] * 130 + ["red"] * 71
    assert s.batches[0].sha256 != s.batches[1].sha256
    # every array keeps the same row chunking, so chunk i lines up across arrays
    assert s.vectors().chunks[0] == s.index_column("image").chunks[0] == s.batch_codes().chunks[0]


def test_same_batch_id_twice_changes_nothing(tmp_path, make_batch, rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    vec, idx = make_batch(X)
    st = tmp_path / "st"
    ingest(vec, index=idx, store=st, name="c", batch_id="b1")
    before = tree_digest(st)
    other, oidx = make_batch(X + 1)
    res = ingest(other, index=oidx, store=st, name="c", batch_id="b1")
    assert res.status == "already-ingested" and not res.changed
    assert "nothing changed" in res.message()
    assert tree_digest(st) == before


def test_same_content_under_new_id_changes_nothing(tmp_path, make_batch, rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    vec, idx = make_batch(X, prefix="same")
    vec2, idx2 = make_batch(X, prefix="same")
    st = tmp_path / "st"
    first = ingest(vec, index=idx, store=st, name="c", chunk_rows=16)
    assert first.batch.id.startswith("sha256-")
    before = tree_digest(st)
    res = ingest(vec2, index=idx2, store=st, name="c", batch_id="other-id")
    assert res.status == "duplicate-content" and res.batch.id == first.batch.id
    assert tree_digest(st) == before


def test_content_hash_is_independent_of_format_and_chunking(tmp_path, make_batch, rng):
    X = rng.standard_normal((90, 3)).astype(np.float32)
    v1, i1 = make_batch(X, prefix="p")
    v2, i2 = make_batch(X, suffix=".npz", prefix="p")
    a = ingest(v1, index=i1, store=tmp_path / "a", name="x", chunk_rows=7)
    b = ingest(v2, index=i2, store=tmp_path / "b", name="x", chunk_rows=64)
    assert a.batch.sha256 == b.batch.sha256


def test_different_dims_refused_store_unchanged(tmp_path, make_batch, rng):
    st = tmp_path / "st"
    vec, idx = make_batch(rng.standard_normal((10, 8)).astype(np.float32))
    ingest(vec, index=idx, store=st, name="c")
    before = tree_digest(st)
    vec2, idx2 = make_batch(rng.standard_normal((10, 9)).astype(np.float32))
    with pytest.raises(BadInputError, match=r"9 dims.*8-dim"):
        ingest(vec2, index=idx2, store=st, name="c")
    assert tree_digest(st) == before


def test_several_sets_in_one_store(tmp_path, make_batch, rng):
    st = tmp_path / "st"
    for name, d in [("color", 4), ("type", 6)]:
        vec, idx = make_batch(rng.standard_normal((12, d)).astype(np.float32))
        ingest(vec, index=idx, store=st, name=name)
    store = DescriptorStore(st)
    assert store.names() == ["color", "type"]
    assert store["type"].shape == (12, 6)
    with pytest.raises(KeyError, match="no descriptor set 'osnet'"):
        store["osnet"]


def test_read_index_and_vectors_for_a_sample(tmp_path, make_batch, rng):
    X = rng.standard_normal((500, 4)).astype(np.float32)
    vec, idx = make_batch(X, color=[str(i) for i in range(500)])
    ingest(vec, index=idx, store=tmp_path / "st", name="c", chunk_rows=64)
    s = DescriptorStore(tmp_path / "st")["c"]
    rows = [499, 3, 250, 3]
    np.testing.assert_array_equal(s.read_vectors(rows), X[rows])
    frame = s.read_index(rows=rows, columns=["color"])
    assert list(frame["color"]) == ["499", "3", "250", "3"] and list(frame["row"]) == rows


def test_memory_mapped_ingest_of_a_file_larger_than_a_chunk(tmp_path, rng):
    # 32 MiB of descriptors in 1 MiB chunks: the Python heap (numpy buffers are
    # traced) must stay near a few chunks, far below the file's size.
    n, d = 16384, 512
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for i in range(0, n, 4096):
        out[i : i + 4096] = rng.standard_normal((4096, d), dtype=np.float32)
    out.flush()
    del out
    idx = write_index(tmp_path / "i.csv", n)
    tracemalloc.start()
    try:
        res = ingest(path, index=idx, store=tmp_path / "st", name="big", chunk_mib=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.n_rows == n and DescriptorStore(tmp_path / "st")["big"].chunk_rows == choose_chunk_rows(d, 1)
    file_size = path.stat().st_size
    assert peak < file_size / 4, f"peak traced memory {peak / 2**20:.1f} MiB for a {file_size / 2**20:.0f} MiB file"
    X = np.load(path, mmap_mode="r")
    got = DescriptorStore(tmp_path / "st")["big"].vectors()
    np.testing.assert_array_equal(got[-1000:].compute(), X[-1000:])
    np.testing.assert_array_equal(got[:1000].compute(), X[:1000])


def test_chunk_rows_default_is_near_32_mib():
    assert choose_chunk_rows(512) * 512 * 4 == 32 * 2**20
    for d in (128, 200, 2048):
        size = choose_chunk_rows(d) * d * 4
        assert 0.9 * 32 * 2**20 <= size <= 32 * 2**20
