"""Write a synthetic crop set: images, index and descriptors with known labels."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image

from ._features import DESCRIPTOR_DIMS, extract_descriptors
from ._render import COLORS, N_CAMERAS, TYPES, render_crops

__all__ = ["CropSet", "make_crops"]

logger = logging.getLogger(__name__)

# Crops rendered, described and written per step. Part of the output's
# definition: each block draws from its own seed, so changing this changes
# the pixels.
_BLOCK_ROWS = 2000
_RENDER_ROWS = 500

# Label frequencies: roughly balanced, mildly unequal like real traffic.
_COLOR_WEIGHTS = np.array([0.19, 0.17, 0.17, 0.13, 0.13, 0.10, 0.11])
_TYPE_WEIGHTS = np.array([0.22, 0.18, 0.20, 0.15, 0.13, 0.12])

_FORMATS = {"png": ("PNG", ".png", {"compress_level": 1}),
            "jpeg": ("JPEG", ".jpg", {"quality": 92})}

# Spawn keys that keep the label stream and the per-block pixel streams apart.
_KEY_LABELS, _KEY_PIXELS = 0, 1


@dataclass(frozen=True)
class CropSet:
    """Files of a synthetic crop set written by :func:`make_crops`.

    Attributes
    ----------
    root : Path
        Directory holding everything below.
    index : Path
        ``root/index.csv`` with header ``image,color,type,camera``; ``image`` is
        relative to the index's directory (``crops/000123.png``).
    descriptors : dict of str to Path
        ``root/<name>.npy`` per descriptor, float32, rows aligned with the index.
    n_rows : int
        Number of crops.
    """

    root: Path
    index: Path
    descriptors: dict[str, Path]
    n_rows: int


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} should be an integer.")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}={value!r} should be {allowed}.")
    return int(value)


def _spans(start: int, stop: int, step: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + step, stop)) for lo in range(start, stop, step)]


def make_crops(
    out_dir: str | os.PathLike[str],
    n_rows: int,
    *,
    seed: int = 0,
    size: int = 64,
    image_format: str = "png",
) -> CropSet:
    """Render synthetic vehicle crops and write them with labels and descriptors.

    Colours and types are drawn from a seeded generator with mildly unequal
    frequencies; cameras uniformly and independently of both. Crops are
    rendered, described and written in blocks of 2,000, so memory stays
    bounded for any ``n_rows``.

    Parameters
    ----------
    out_dir : str or path-like
        Output directory, created if missing. Files of an earlier set are
        overwritten; the index and descriptors are replaced atomically.
    n_rows : int
        Number of crops, at least 1.
    seed : int, default=0
        Non-negative seed. The same seed (and size and format) gives
        byte-identical images, ``index.csv`` and ``.npy`` files.
    size : int, default=64
        Side of the square crops in pixels, in [16, 1024].
    image_format : {"png", "jpeg"}, default="png"
        Image file format (``.png`` or ``.jpg`` files). Descriptors are computed
        from the rendered pixels, which PNG stores exactly and JPEG only
        approximately.

    Returns
    -------
    CropSet
        Paths of the written files.

    Examples
    --------
    >>> import tempfile
    >>> crops = make_crops(tempfile.mkdtemp(), 10, seed=1)
    >>> sorted(crops.descriptors)
    ['color', 'generic', 'reid', 'type']
    """
    n_rows = _check_int("n_rows", n_rows, 1)
    seed = _check_int("seed", seed, 0)
    size = _check_int("size", size, 16, 1024)
    if image_format not in _FORMATS:
        raise ValueError(f"image_format={image_format!r} should be one of {sorted(_FORMATS)}.")
    return _make_crops_impl(Path(out_dir), n_rows, seed, size, image_format)


def _make_crops_impl(root: Path, n_rows: int, seed: int, size: int,
                     image_format: str) -> CropSet:
    """Write the crop set; arguments are validated."""
    crops_dir = root / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    pil_format, suffix, save_options = _FORMATS[image_format]
    width = max(6, len(str(n_rows - 1)))

    labels = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_KEY_LABELS,)))
    color_ids = labels.choice(len(COLORS), size=n_rows, p=_COLOR_WEIGHTS)
    type_ids = labels.choice(len(TYPES), size=n_rows, p=_TYPE_WEIGHTS)
    camera_ids = labels.integers(0, N_CAMERAS, size=n_rows)
    color_names = list(COLORS)

    index_path = root / "index.csv"
    npy_paths = {name: root / f"{name}.npy" for name in DESCRIPTOR_DIMS}
    tmp = f".tmp-{os.getpid()}"
    index_tmp = index_path.with_name(index_path.name + tmp)
    npy_tmp = {name: p.with_name(p.name + tmp) for name, p in npy_paths.items()}
    try:
        arrays = {name: open_memmap(npy_tmp[name], mode="w+", dtype=np.float32,
                                    shape=(n_rows, dim))
                  for name, dim in DESCRIPTOR_DIMS.items()}
        with open(index_tmp, "w", encoding="utf-8", newline="") as index:
            index.write("image,color,type,camera\n")
            for block, start in enumerate(range(0, n_rows, _BLOCK_ROWS)):
                tic = time.perf_counter()
                stop = min(start + _BLOCK_ROWS, n_rows)
                pixels = np.random.default_rng(
                    np.random.SeedSequence(seed, spawn_key=(_KEY_PIXELS, block)))
                # Rendering works on smaller batches: its temporaries then fit in
                # cache (about 1.5x faster than whole blocks).
                images = np.concatenate([
                    render_crops(type_ids[lo:hi], color_ids[lo:hi], rng=pixels, size=size,
                                 camera_ids=camera_ids[lo:hi])
                    for lo, hi in _spans(start, stop, _RENDER_ROWS)])
                for name, values in extract_descriptors(images).items():
                    arrays[name][start:stop] = values
                lines = []
                for offset, image in enumerate(images):
                    row = start + offset
                    rel = f"crops/{row:0{width}d}{suffix}"
                    Image.fromarray(image).save(root / rel, format=pil_format, **save_options)
                    lines.append(f"{rel},{color_names[color_ids[row]]},"
                                 f"{TYPES[type_ids[row]]},cam{camera_ids[row] + 1:02d}\n")
                index.write("".join(lines))
                logger.debug("crops %d-%d written in %.2f s", start, stop,
                             time.perf_counter() - tic)
        for name in arrays:
            arrays[name].flush()
        arrays.clear()  # drop the maps before renaming their files
        for name in DESCRIPTOR_DIMS:
            os.replace(npy_tmp[name], npy_paths[name])
        os.replace(index_tmp, index_path)
    finally:
        for leftover in [index_tmp, *npy_tmp.values()]:
            leftover.unlink(missing_ok=True)
    return CropSet(root=root, index=index_path, descriptors=npy_paths, n_rows=n_rows)
