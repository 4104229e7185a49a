"""Tests of the synthetic crop generator and the large descriptor generator."""

from __future__ import annotations

import csv
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from storage.synthetic import (
    COLORS,
    DESCRIPTOR_DIMS,
    N_CAMERAS,
    TYPES,
    CropSet,
    extract_descriptors,
    make_crops,
    make_large_descriptors,
    render_crops,
)

pytestmark = pytest.mark.timeout(120)

N_QUALITY = 2000


@pytest.fixture(scope="module")
def crop_set(tmp_path_factory: pytest.TempPathFactory) -> CropSet:
    return make_crops(tmp_path_factory.mktemp("crops"), N_QUALITY, seed=0)


@pytest.fixture(scope="module")
def index(crop_set: CropSet) -> pd.DataFrame:
    return pd.read_csv(crop_set.index)


@pytest.fixture(scope="module")
def descriptors(crop_set: CropSet) -> dict[str, np.ndarray]:
    return {name: np.load(path) for name, path in crop_set.descriptors.items()}


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(x)


# --- crop set layout -------------------------------------------------------


def test_crop_set_paths(crop_set: CropSet) -> None:
    assert crop_set.n_rows == N_QUALITY
    assert crop_set.index == crop_set.root / "index.csv"
    assert set(crop_set.descriptors) == set(DESCRIPTOR_DIMS)
    for name, path in crop_set.descriptors.items():
        assert path == crop_set.root / f"{name}.npy"
        assert path.is_file()
    # No temporary file is left behind.
    assert not [p for p in crop_set.root.iterdir() if ".tmp" in p.name]


def test_index_columns_and_values(crop_set: CropSet, index: pd.DataFrame) -> None:
    with open(crop_set.index, encoding="utf-8") as f:
        assert f.readline() == "image,color,type,camera\n"
    assert len(index) == N_QUALITY
    assert set(index["color"]) == set(COLORS)
    assert set(index["type"]) == set(TYPES)
    assert set(index["camera"]) == {f"cam{k:02d}" for k in range(1, N_CAMERAS + 1)}
    # Roughly balanced: every class holds at least half its uniform share.
    assert index["color"].value_counts().min() > 0.5 * N_QUALITY / len(COLORS)
    assert index["type"].value_counts().min() > 0.5 * N_QUALITY / len(TYPES)
    # Cameras carry no information on colour or type.
    assert adjusted_mutual_info_score(index["camera"], index["color"]) < 0.02
    assert adjusted_mutual_info_score(index["camera"], index["type"]) < 0.02


def test_image_paths_are_relative_and_open(crop_set: CropSet, index: pd.DataFrame) -> None:
    assert index["image"].iloc[0] == "crops/000000.png"
    assert index["image"].iloc[123] == "crops/000123.png"
    for rel in index["image"]:
        assert not Path(rel).is_absolute()
        assert (crop_set.index.parent / rel).is_file()
    for rel in index["image"].iloc[::250]:
        with Image.open(crop_set.index.parent / rel) as im:
            assert im.format == "PNG"
            assert im.mode == "RGB"
            assert im.size == (64, 64)


def test_descriptor_shapes_and_dtypes(descriptors: dict[str, np.ndarray]) -> None:
    assert DESCRIPTOR_DIMS == {"color": 128, "type": 200, "reid": 512, "generic": 256}
    for name, dim in DESCRIPTOR_DIMS.items():
        x = descriptors[name]
        assert x.shape == (N_QUALITY, dim)
        assert x.dtype == np.float32
        assert np.isfinite(x).all()
        assert x.std(axis=0).max() > 0


def test_descriptors_come_from_the_stored_pixels(crop_set: CropSet, index: pd.DataFrame,
                                                 descriptors: dict[str, np.ndarray]) -> None:
    rows = np.arange(0, N_QUALITY, 97)
    images = np.stack([np.asarray(Image.open(crop_set.index.parent / index["image"][i]))
                       for i in rows])
    again = extract_descriptors(images)
    for name in DESCRIPTOR_DIMS:
        np.testing.assert_allclose(again[name], descriptors[name][rows], rtol=1e-5, atol=1e-6)


# --- determinism -----------------------------------------------------------


def _file_bytes(crop_set: CropSet) -> dict[str, bytes]:
    files = [crop_set.index, *crop_set.descriptors.values()]
    files += sorted((crop_set.root / "crops").iterdir())
    return {str(p.relative_to(crop_set.root)): p.read_bytes() for p in files}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = _file_bytes(make_crops(tmp_path / "a", 30, seed=7))
    b = _file_bytes(make_crops(tmp_path / "b", 30, seed=7))
    assert a.keys() == b.keys()
    assert a == b


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    a = make_crops(tmp_path / "a", 30, seed=7)
    b = make_crops(tmp_path / "b", 30, seed=8)
    assert a.index.read_bytes() != b.index.read_bytes()
    for name in DESCRIPTOR_DIMS:
        assert not np.array_equal(np.load(a.descriptors[name]), np.load(b.descriptors[name]))


def test_jpeg_format_and_small_size(tmp_path: Path) -> None:
    crops = make_crops(tmp_path, 5, seed=1, size=32, image_format="jpeg")
    index = pd.read_csv(crops.index)
    assert list(index["image"]) == [f"crops/{i:06d}.jpg" for i in range(5)]
    with Image.open(tmp_path / index["image"][0]) as im:
        assert (im.format, im.size) == ("JPEG", (32, 32))
    assert np.load(crops.descriptors["reid"]).shape == (5, 512)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 0}, "n_rows=0"),
        ({"n_rows": 5, "seed": -1}, "seed=-1"),
        ({"n_rows": 5, "size": 8}, "size=8"),
        ({"n_rows": 5, "image_format": "gif"}, "image_format='gif'"),
    ],
    ids=["rows", "seed", "size", "format"],
)
def test_make_crops_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_crops(tmp_path, **kwargs)


# --- rendering and extraction ----------------------------------------------


def test_render_is_deterministic_and_shaped() -> None:
    types = np.arange(12) % len(TYPES)
    colors = np.arange(12) % len(COLORS)
    a = render_crops(types, colors, rng=3, size=48)
    b = render_crops(types, colors, rng=np.random.default_rng(3), size=48)
    assert a.shape == (12, 48, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, render_crops(types, colors, rng=4, size=48))


def test_render_rejects_bad_ids() -> None:
    with pytest.raises(ValueError, match="type_ids"):
        render_crops(np.array([len(TYPES)]), np.array([0]), rng=0)
    with pytest.raises(ValueError, match="same shape"):
        render_crops(np.array([0, 1]), np.array([0]), rng=0)


def test_paint_colours_are_distinguishable_by_pixels() -> None:
    # The central pixels of a large vehicle are paint; white, silver and black
    # must differ clearly.
    names = list(COLORS)
    ids = np.array([names.index(c) for c in ("white", "silver", "black")])
    images = render_crops(np.full(3, TYPES.index("bus")), ids, rng=0)
    means = [img[img.shape[0] // 2 + 4:img.shape[0] // 2 + 8].reshape(-1, 3).mean()
             for img in images]
    assert means[0] > means[1] + 30 > means[2] + 60


def test_shape_and_colour_descriptors_ignore_driving_direction() -> None:
    images = render_crops(np.arange(6), np.arange(6), rng=5)
    a = extract_descriptors(images)
    b = extract_descriptors(images[:, :, ::-1].copy())
    np.testing.assert_allclose(a["type"], b["type"], atol=1e-4)
    np.testing.assert_allclose(a["color"], b["color"], atol=1e-4)


def test_extract_is_blockwise_consistent() -> None:
    images = render_crops(np.arange(10) % 6, np.arange(10) % 7, rng=2)
    whole = extract_descriptors(images)
    blocks = extract_descriptors(images, block_size=3)
    for name in DESCRIPTOR_DIMS:
        np.testing.assert_allclose(whole[name], blocks[name], rtol=1e-5, atol=1e-6)


def test_extract_rejects_bad_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        extract_descriptors(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        extract_descriptors(np.zeros((16, 16, 3), np.uint8))


# --- cluster structure (the quality bar) -------------------------------------


@pytest.mark.parametrize("pca", [False, True], ids=["raw", "pca50"])
def test_color_descriptor_clusters_by_colour(descriptors, index, pca) -> None:
    x = descriptors["color"]
    if pca:
        x = PCA(n_components=50, random_state=0).fit_transform(x)
    labels = _kmeans(x, 7)
    assert adjusted_rand_score(index["color"], labels) >= 0.85
    assert adjusted_mutual_info_score(index["type"], labels) < 0.1


@pytest.mark.parametrize("pca", [False, True], ids=["raw", "pca50"])
def test_type_descriptor_clusters_by_type(descriptors, index, pca) -> None:
    x = descriptors["type"]
    if pca:
        x = PCA(n_components=50, random_state=0).fit_transform(x)
    labels = _kmeans(x, 6)
    assert adjusted_rand_score(index["type"], labels) >= 0.7
    assert adjusted_mutual_info_score(index["color"], labels) < 0.1


def test_generic_descriptor_has_no_colour_or_type_clusters(descriptors, index) -> None:
    labels = _kmeans(descriptors["generic"], 7)
    assert adjusted_mutual_info_score(index["color"], labels) < 0.15
    assert adjusted_mutual_info_score(index["type"], labels) < 0.15


def test_reid_descriptor_mixes_colour_and_type(descriptors, index) -> None:
    labels = _kmeans(descriptors["reid"], 7)
    ami_color = adjusted_mutual_info_score(index["color"], labels)
    ami_type = adjusted_mutual_info_score(index["type"], labels)
    assert 0.1 < ami_color < 0.8
    assert 0.1 < ami_type < 0.8


# --- large descriptor sets -----------------------------------------------------


def test_large_set_shape_index_and_clusters(tmp_path: Path) -> None:
    pool = [f"crops/{i:06d}.png" for i in range(7)]
    out = make_large_descriptors(tmp_path / "x.npy", 10_007, 96, n_clusters=12, seed=3,
                                 chunk_rows=1000, image_pool=pool,
                                 index_path=tmp_path / "x.csv")
    assert (out.n_rows, out.n_dims) == (10_007, 96)
    assert out.centers.shape == (12, 96) and out.centers.dtype == np.float32
    assert out.weights.shape == (12,) and np.isclose(out.weights.sum(), 1.0)
    assert out.spreads.shape == (12,) and (out.spreads > 0).all()
    x = np.load(out.path, mmap_mode="r")
    assert x.shape == (10_007, 96) and x.dtype == np.float32
    assert np.isfinite(x).all()

    index = pd.read_csv(out.index)
    assert list(index.columns) == ["image", "cluster"]
    assert len(index) == 10_007
    assert list(index["image"][:9]) == pool + pool[:2]
    truth = index["cluster"].to_numpy()
    assert truth.min() >= 0 and truth.max() < 12

    # Every row lies nearest to the centre of its own component, at the
    # distance its spread predicts.
    d2 = ((np.asarray(x)[:, None, :] - out.centers[None]) ** 2).sum(axis=-1)
    assert (d2.argmin(axis=1) == truth).mean() > 0.99
    own = np.sqrt(d2[np.arange(len(truth)), truth] / 96)
    np.testing.assert_allclose(own.mean(), out.spreads[truth].mean(), rtol=0.05)
    for k in range(12):
        rows = np.asarray(x)[truth == k]
        if len(rows) > 100:
            np.testing.assert_allclose(rows.mean(axis=0), out.centers[k],
                                       atol=6 * out.spreads[k] / np.sqrt(len(rows)))


def test_large_set_memory_stays_bounded(tmp_path: Path) -> None:
    n_rows, n_dims, chunk = 300_001, 128, 8192  # 154 MB of output
    tracemalloc.start()
    try:
        out = make_large_descriptors(tmp_path / "big.npy", n_rows, n_dims,
                                     chunk_rows=chunk, n_clusters=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.path.stat().st_size > n_rows * n_dims * 4
    # A few chunks at most (one chunk is 4 MB), nothing near the 154 MB output.
    assert peak < 16 * 2**20
    x = np.load(out.path, mmap_mode="r")
    assert x.shape == (n_rows, n_dims)
    assert np.isfinite(x[-chunk:]).all() and np.abs(x[-1]).sum() > 0


def test_large_set_is_deterministic(tmp_path: Path) -> None:
    def make(name: str, seed: int) -> tuple[bytes, bytes]:
        out = make_large_descriptors(tmp_path / f"{name}.npy", 5000, 32, n_clusters=4,
                                     seed=seed, chunk_rows=999,
                                     index_path=tmp_path / f"{name}.csv")
        return out.path.read_bytes(), out.index.read_bytes()

    assert make("a", 1) == make("b", 1)
    assert make("c", 2)[0] != make("a", 1)[0]


def test_large_set_float64_and_default_image_names(tmp_path: Path) -> None:
    out = make_large_descriptors(tmp_path / "x.npy", 50, 8, n_clusters=3, dtype=np.float64,
                                 index_path=tmp_path / "x.csv")
    assert np.load(out.path).dtype == np.float64
    index = pd.read_csv(out.index)
    assert index["image"][0] == "synthetic/00.png" and index["image"].is_unique


def test_large_set_quotes_awkward_image_paths(tmp_path: Path) -> None:
    pool = ['a,b.png', 'say "hi".png', "plain.png"]
    out = make_large_descriptors(tmp_path / "x.npy", 6, 4, n_clusters=2, image_pool=pool,
                                 index_path=tmp_path / "x.csv")
    with open(out.index, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == pool * 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 0}, "n_rows=0"),
        ({"n_dims": 0}, "n_dims=0"),
        ({"n_clusters": 0}, "n_clusters=0"),
        ({"chunk_rows": 0}, "chunk_rows=0"),
        ({"dtype": np.int32}, "dtype=int32"),
        ({"image_pool": []}, "image_pool"),
    ],
    ids=["rows", "dims", "clusters", "chunk", "dtype", "pool"],
)
def test_large_set_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"n_rows": 10, "n_dims": 4} | kwargs
    n_rows, n_dims = args.pop("n_rows"), args.pop("n_dims")
    with pytest.raises(ValueError, match=match):
        make_large_descriptors(tmp_path / "x.npy", n_rows, n_dims, **args)
    assert not (tmp_path / "x.npy").exists()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_rows=st.integers(1, 700), chunk_rows=st.integers(1, 300),
       n_clusters=st.integers(1, 5))
def test_large_set_rows_match_index_for_any_chunking(n_rows: int, chunk_rows: int,
                                                     n_clusters: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = make_large_descriptors(Path(tmp) / "x.npy", n_rows, 3, n_clusters=n_clusters,
                                     chunk_rows=chunk_rows, index_path=Path(tmp) / "x.csv",
                                     image_pool=["p.png"])
        x = np.load(out.path)
        index = pd.read_csv(out.index)
        assert x.shape == (n_rows, 3)
        assert len(index) == n_rows
        assert index["cluster"].between(0, n_clusters - 1).all()
        assert np.isfinite(x).all()
