"""Vectorised rendering of synthetic side-view vehicle crops.

Every crop is drawn from a handful of per-crop scalars (position, scale,
orientation, colour, lighting) and per-type silhouette tables. The silhouette
of a side view is a function of the horizontal coordinate only (a roofline over
a flat underbody), so most masks are built from per-column profiles of shape
``(n, size)`` broadcast against per-row heights of shape ``(n, size)``; only the
wheels and the shadow need full ``(n, size, size)`` distance fields. Edges are
anti-aliased by clipping signed pixel distances to ``[0, 1]``.

Nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["COLORS", "N_CAMERAS", "TYPES", "render_crops"]

#: Body types, in label order.
TYPES: tuple[str, ...] = ("sedan", "hatchback", "suv", "minivan", "truck", "bus")

#: Paint colours, name -> sRGB.
COLORS: dict[str, tuple[int, int, int]] = {
    "white": (236, 236, 232),
    "black": (26, 27, 31),
    "silver": (160, 166, 174),
    "red": (178, 28, 34),
    "blue": (30, 62, 160),
    "yellow": (232, 186, 26),
    "green": (36, 118, 52),
}

#: Number of synthetic cameras; each has its own scene palette.
N_CAMERAS = 8

# Fixed seed of the camera scene palettes, so camera k looks the same in every run.
_CAMERA_SEED = 20240611

_GLASS = np.array([44.0, 52.0, 62.0], dtype=np.float32)
_TIRE = np.array([22.0, 22.0, 24.0], dtype=np.float32)
_HUB = np.array([128.0, 129.0, 134.0], dtype=np.float32)
_ARCH = np.array([14.0, 14.0, 15.0], dtype=np.float32)
_LIGHT = np.array([242.0, 236.0, 205.0], dtype=np.float32)

# Kinds of the small rectangles drawn over the body.
_RECT_GLASS = 0
_RECT_LIGHT = 1


@dataclass(frozen=True)
class _Shape:
    """Side-view silhouette of one body type.

    Horizontal positions ``u`` run from the rear (0) to the front (1) of the
    vehicle; heights ``v`` are in units of the vehicle length, before the
    vertical stretch that square crops of long objects have.
    """

    roof_u: tuple[float, ...]
    roof_v: tuple[float, ...]
    clearance: float
    belt: float
    glass: tuple[tuple[float, float], ...]
    glass_margin: float
    wheels: tuple[float, ...]
    wheel_r: float
    rects: tuple[tuple[float, float, float, float, int], ...]


_SHAPES: dict[str, _Shape] = {
    # Three boxes: trunk, cabin, hood.
    "sedan": _Shape(
        roof_u=(0.0, 0.015, 0.06, 0.22, 0.28, 0.40, 0.58, 0.73, 0.78, 0.97, 1.0),
        roof_v=(0.10, 0.165, 0.18, 0.185, 0.20, 0.285, 0.285, 0.185, 0.165, 0.145, 0.10),
        clearance=0.05,
        belt=0.175,
        glass=((0.27, 0.485), (0.50, 0.75)),
        glass_margin=0.02,
        wheels=(0.19, 0.80),
        wheel_r=0.07,
        rects=((0.955, 0.99, 0.115, 0.14, _RECT_LIGHT),),
    ),
    # Two boxes: near-vertical hatch, long roof, short hood.
    "hatchback": _Shape(
        roof_u=(0.0, 0.025, 0.06, 0.11, 0.55, 0.72, 0.77, 0.97, 1.0),
        roof_v=(0.13, 0.30, 0.33, 0.345, 0.345, 0.215, 0.195, 0.17, 0.12),
        clearance=0.055,
        belt=0.205,
        glass=((0.05, 0.30), (0.32, 0.53), (0.55, 0.77)),
        glass_margin=0.022,
        wheels=(0.16, 0.83),
        wheel_r=0.085,
        rects=((0.955, 0.99, 0.14, 0.165, _RECT_LIGHT),),
    ),
    # Tall box, high clearance, big wheels, upright tail.
    "suv": _Shape(
        roof_u=(0.0, 0.01, 0.03, 0.64, 0.76, 0.80, 0.98, 1.0),
        roof_v=(0.18, 0.395, 0.42, 0.42, 0.27, 0.255, 0.24, 0.17),
        clearance=0.10,
        belt=0.265,
        glass=((0.035, 0.24), (0.26, 0.47), (0.49, 0.78)),
        glass_margin=0.025,
        wheels=(0.18, 0.81),
        wheel_r=0.10,
        rects=((0.955, 0.99, 0.19, 0.215, _RECT_LIGHT),),
    ),
    # One box: the windshield runs down into a very short hood; long window row.
    "minivan": _Shape(
        roof_u=(0.0, 0.015, 0.035, 0.68, 0.91, 0.97, 1.0),
        roof_v=(0.15, 0.335, 0.355, 0.355, 0.19, 0.165, 0.12),
        clearance=0.05,
        belt=0.20,
        glass=((0.03, 0.22), (0.24, 0.46), (0.48, 0.70), (0.72, 0.93)),
        glass_margin=0.022,
        wheels=(0.15, 0.83),
        wheel_r=0.075,
        rects=((0.96, 0.99, 0.13, 0.155, _RECT_LIGHT),),
    ),
    # Pickup: low open cargo bed at the rear, tall cab, long hood.
    "truck": _Shape(
        roof_u=(0.0, 0.01, 0.44, 0.445, 0.465, 0.70, 0.77, 0.79, 0.98, 1.0),
        roof_v=(0.13, 0.245, 0.245, 0.245, 0.375, 0.375, 0.26, 0.25, 0.235, 0.17),
        clearance=0.085,
        belt=0.255,
        glass=((0.48, 0.60), (0.62, 0.78)),
        glass_margin=0.025,
        wheels=(0.16, 0.82),
        wheel_r=0.088,
        rects=(
            (0.432, 0.447, 0.085, 0.25, _RECT_GLASS),  # gap between bed and cab
            (0.01, 0.44, 0.226, 0.245, _RECT_GLASS),  # top rail of the bed
            (0.965, 0.995, 0.19, 0.215, _RECT_LIGHT),
        ),
    ),
    # Long box with a row of equal windows, a glass door and small wheels.
    "bus": _Shape(
        roof_u=(0.0, 0.005, 0.015, 0.985, 0.995, 1.0),
        roof_v=(0.06, 0.285, 0.30, 0.30, 0.285, 0.06),
        clearance=0.04,
        belt=0.15,
        glass=tuple((0.02 + 0.105 * i, 0.11 + 0.105 * i) for i in range(8)),
        glass_margin=0.035,
        wheels=(0.17, 0.79),
        wheel_r=0.055,
        rects=(
            (0.87, 0.935, 0.05, 0.27, _RECT_GLASS),  # door
            (0.955, 0.995, 0.12, 0.28, _RECT_GLASS),  # windshield
            (0.975, 0.998, 0.07, 0.09, _RECT_LIGHT),
        ),
    ),
}

_MAX_RECTS = max(len(s.rects) for s in _SHAPES.values())
_MAX_WHEELS = max(len(s.wheels) for s in _SHAPES.values())
_MAX_HEIGHT = {name: max(s.roof_v) for name, s in _SHAPES.items()}


@lru_cache(maxsize=1)
def _camera_palettes() -> tuple[np.ndarray, np.ndarray]:
    """Scene palette of each camera: backdrop base colour and road grey level."""
    rng = np.random.default_rng(_CAMERA_SEED)
    grey = rng.uniform(75.0, 145.0, size=(N_CAMERAS, 1))
    tint = rng.normal(0.0, 14.0, size=(N_CAMERAS, 3))
    backdrop = (grey + tint).astype(np.float32)
    road = rng.uniform(72.0, 122.0, size=N_CAMERAS).astype(np.float32)
    backdrop.setflags(write=False)  # cached and shared between calls
    road.setflags(write=False)
    return backdrop, road


@lru_cache(maxsize=8)
def _upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation matrix of shape (n_out, n_in) for smooth textures."""
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
    pos = np.clip(pos, 0.0, n_in - 1.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    mat = np.zeros((n_out, n_in))
    mat[np.arange(n_out), lo] += 1.0 - frac
    mat[np.arange(n_out), hi] += frac
    mat = mat.astype(np.float32)
    mat.setflags(write=False)
    return mat


def _ramp(x: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a signed pixel distance (positive = inside).

    Works in place: pass a temporary.
    """
    return np.clip(x + 0.5, 0.0, 1.0, out=x)


def _over(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Composite ``color`` over ``img`` in place with coverage ``alpha``.

    ``img`` has shape (n, h, w, 3) and ``alpha`` (n, h, w). ``color`` is one
    colour of shape (3,), one per crop (n, 3), or one per crop and row
    (n, h, 3). Only covered pixels are touched: most layers cover a small part
    of the crop, and a dense update of the whole batch per layer dominated the
    rendering time.
    """
    n, h, w = alpha.shape
    flat = np.flatnonzero(alpha)
    if flat.size == 0:
        return
    a = alpha.reshape(-1)[flat][:, None]
    if color.ndim == 1:
        c = color
    elif color.ndim == 2:
        c = color[flat // (h * w)]
    else:
        c = color.reshape(n * h, 3)[flat // w]
    pixels = img.reshape(-1, 3)
    p = pixels[flat]
    p += a * (c - p)
    pixels[flat] = p


def _window(center: np.ndarray, extent: int, size: int) -> np.ndarray:
    """Pixel indices of shape (n, extent) of a window around each centre.

    Windows are clamped to the image, so they keep their full extent.
    """
    origin = np.clip(np.floor(center - 0.5 * extent), 0, size - extent).astype(np.intp)
    return origin[:, None] + np.arange(extent)


def _gather_window(img: np.ndarray, rows: np.ndarray, cols: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Copy per-crop windows out of ``img``.

    ``rows`` (n, h) and ``cols`` (n, w) index the window of each crop. Returns
    the pixels, shape (n, h, w, 3), and their flat indices for
    :func:`_scatter_window`.
    """
    n, size = img.shape[0], img.shape[1]
    flat = ((np.arange(n)[:, None, None] * size + rows[:, :, None]) * size
            + cols[:, None, :])
    return np.take(img.reshape(-1, 3), flat, axis=0), flat


def _scatter_window(img: np.ndarray, flat: np.ndarray, pixels: np.ndarray) -> None:
    """Write windows taken by :func:`_gather_window` back into ``img``."""
    img.reshape(-1, 3)[flat.reshape(-1)] = pixels.reshape(-1, 3)


def _blend(p: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """``p`` (n, h, w, 3) += ``alpha`` (n, h, w) * (``color`` - ``p``), in place.

    ``color`` is one colour (3,) or one per crop (n, 3).
    """
    c = color if color.ndim == 1 else color[:, None, None, :]
    p += alpha[..., None] * (c - p)


def _background(rng: np.random.Generator, n: int, size: int, camera: np.ndarray,
                road_top: np.ndarray) -> np.ndarray:
    """Muted backdrop gradient over a grey road band, with smooth texture.

    The per-row part (vertical gradient, road band) is built at shape
    (n, size, 3); the tilt of the gradient and the texture live on a coarse grid
    upsampled by one separable product, so the full-size array is written once.
    """
    f32 = np.float32
    backdrop, road_grey = _camera_palettes()
    top = backdrop[camera] + rng.normal(0.0, 13.0, size=(n, 3)).astype(f32)
    bottom = top * rng.uniform(0.75, 1.2, size=(n, 1)).astype(f32)
    bottom += rng.normal(0.0, 10.0, size=(n, 3)).astype(f32)
    road = road_grey[camera][:, None] + rng.normal(0.0, 8.0, size=(n, 1)).astype(f32)
    road = road + rng.normal(0.0, 3.0, size=(n, 3)).astype(f32)

    rows = np.arange(size, dtype=f32) + 0.5
    t = rows / size
    base = top[:, None, :] + t[None, :, None] * (bottom - top)[:, None, :]
    a_road = _ramp(rows[None, :] - road_top[:, None])[..., None]
    base += a_road * (road[:, None, :] - base)

    # Coarse grid: a horizontal tilt of the backdrop plus mostly-grey blotches
    # (foliage, facades, asphalt patches).
    coarse = 6
    nodes = (np.arange(coarse, dtype=f32) + 0.5) / coarse - 0.5
    tilt = rng.normal(0.0, 12.0, size=(n, 1, 1, 3)).astype(f32) * nodes[None, None, :, None]
    amp = rng.uniform(2.5, 8.0, size=(n, 1, 1, 1)).astype(f32)
    grey = rng.standard_normal((n, coarse, coarse, 1), dtype=f32)
    tint = rng.standard_normal((n, coarse, coarse, 3), dtype=f32)
    grid = amp * (grey + 0.35 * tint) + tilt
    up = _upsample_matrix(coarse, size)
    rows_up = np.einsum("yi,nijc->nyjc", up, grid)  # (n, size, coarse, 3), small
    img = np.matmul(up, rows_up)  # contiguous (n, size, size, 3)
    img += base[:, :, None, :]
    return img


def _profiles(type_ids: np.ndarray, x0: np.ndarray, length: np.ndarray,
              flip: np.ndarray, hfac: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Per-column silhouette profiles and per-crop geometry, grouped by type."""
    n = type_ids.shape[0]
    cols = np.arange(size, dtype=np.float32) + 0.5
    u = (cols[None, :] - x0[:, None]) / length[:, None]
    u = np.where(flip[:, None], 1.0 - u, u).astype(np.float32)
    out = {
        "roof": np.zeros((n, size), np.float32),
        "glass_col": np.zeros((n, size), bool),
        "clearance": np.zeros(n, np.float32),
        "belt": np.zeros(n, np.float32),
        "margin": np.zeros(n, np.float32),
        "wheel_u": np.full((n, _MAX_WHEELS), np.nan, np.float32),
        "wheel_r": np.zeros(n, np.float32),
        "rect_col": np.zeros((n, _MAX_RECTS, size), bool),
        "rect_v": np.zeros((n, _MAX_RECTS, 2), np.float32),
        "rect_kind": np.zeros((n, _MAX_RECTS), np.int8),
    }
    out["rect_v"][:, :, 0] = 1.0  # empty slots: v0 > v1 draws nothing
    for t, name in enumerate(TYPES):
        idx = np.flatnonzero(type_ids == t)
        if idx.size == 0:
            continue
        s = _SHAPES[name]
        ut = u[idx]
        h = hfac[idx, None]
        out["roof"][idx] = np.interp(ut, s.roof_u, s.roof_v) * h
        gcol = np.zeros(ut.shape, bool)
        for a, b in s.glass:
            gcol |= (ut >= a) & (ut <= b)
        out["glass_col"][idx] = gcol
        out["clearance"][idx] = s.clearance
        out["belt"][idx] = s.belt * hfac[idx]
        out["margin"][idx] = s.glass_margin
        out["wheel_u"][idx, : len(s.wheels)] = s.wheels
        out["wheel_r"][idx] = s.wheel_r
        for k, (a, b, v0, v1, kind) in enumerate(s.rects):
            out["rect_col"][idx, k] = (ut >= a) & (ut <= b)
            out["rect_v"][idx, k, 0] = v0 * hfac[idx]
            out["rect_v"][idx, k, 1] = v1 * hfac[idx]
            out["rect_kind"][idx, k] = kind
    return out


def _as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _check_ids(name: str, ids: np.ndarray, n_values: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got shape {ids.shape} "
                         f"and dtype {ids.dtype}.")
    if ids.size and (ids.min() < 0 or ids.max() >= n_values):
        raise ValueError(f"{name} must lie in [0, {n_values}), got values in "
                         f"[{ids.min()}, {ids.max()}].")
    return ids.astype(np.intp, copy=False)


def render_crops(
    type_ids: np.ndarray,
    color_ids: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    size: int = 64,
    camera_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Render a batch of side-view vehicle crops.

    Parameters
    ----------
    type_ids : array of int of shape (n,)
        Index into :data:`TYPES` of each crop's body type.
    color_ids : array of int of shape (n,)
        Index into ``list(COLORS)`` of each crop's paint colour.
    rng : numpy.random.Generator or int or None, default=None
        Source of every random choice (position, scale, orientation, lighting,
        background, noise). The same generator state gives the same pixels.
    size : int, default=64
        Height and width of the square crops, at least 16.
    camera_ids : array of int of shape (n,) or None, default=None
        Camera of each crop in ``[0, N_CAMERAS)``; a camera sets the base colour
        of the backdrop and the road grey, never the vehicle. Drawn from
        ``rng`` when None.

    Returns
    -------
    images : ndarray of shape (n, size, size, 3), dtype uint8
        RGB crops.

    Examples
    --------
    >>> import numpy as np
    >>> imgs = render_crops(np.array([0, 5]), np.array([3, 1]), rng=0, size=32)
    >>> imgs.shape, imgs.dtype
    ((2, 32, 32, 3), dtype('uint8'))
    """
    type_ids = _check_ids("type_ids", type_ids, len(TYPES))
    color_ids = _check_ids("color_ids", color_ids, len(COLORS))
    if type_ids.shape != color_ids.shape:
        raise ValueError(f"type_ids and color_ids must have the same shape, got "
                         f"{type_ids.shape} and {color_ids.shape}.")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 16:
        raise ValueError(f"size={size!r} should be an integer >= 16.")
    rng = _as_generator(rng)
    n = type_ids.shape[0]
    if camera_ids is None:
        camera_ids = rng.integers(0, N_CAMERAS, size=n)
    camera_ids = _check_ids("camera_ids", camera_ids, N_CAMERAS)
    if camera_ids.shape != type_ids.shape:
        raise ValueError(f"camera_ids must have shape {type_ids.shape}, got {camera_ids.shape}.")
    if n == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    return _render_impl(type_ids, color_ids, camera_ids, rng, int(size))


def _render_impl(type_ids: np.ndarray, color_ids: np.ndarray, camera_ids: np.ndarray,
                 rng: np.random.Generator, size: int) -> np.ndarray:
    """Render crops; inputs are validated, non-empty and of equal length."""
    n = type_ids.shape[0]
    f32 = np.float32

    def uniform(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, size=n).astype(f32)

    # Geometry: vehicle length and vertical stretch in pixels, then placement.
    length = uniform(0.6, 0.9) * size
    stretch = uniform(1.5, 1.65)
    hfac = uniform(0.96, 1.04)
    flip = rng.random(n) < 0.5
    max_height = np.array([_MAX_HEIGHT[t] for t in TYPES], f32)[type_ids] * hfac
    height = max_height * stretch * length
    shrink = np.minimum(1.0, (size - 3.0) / height).astype(f32)
    length *= shrink
    height *= shrink
    pv = stretch * length  # pixels per unit of v
    # Detector boxes leave a little context on both sides of the vehicle.
    margin = max(1.0, 0.035 * size)
    x0 = margin + rng.random(n).astype(f32) * (size - 2.0 * margin - length)
    ground = height + 1.0 + rng.random(n).astype(f32) * (size - 1.5 - height - 1.0)
    road_top = ground - uniform(0.05, 0.45) * height

    illum = uniform(0.93, 1.05)
    palette = np.array(list(COLORS.values()), f32)
    paint = palette[color_ids] * illum[:, None] + rng.normal(0.0, 4.0, size=(n, 3)).astype(f32)
    noise_sigma = uniform(1.5, 5.0)

    img = _background(rng, n, size, camera_ids, road_top)
    prof = _profiles(type_ids, x0, length, flip, hfac, size)

    pix = np.arange(size, dtype=f32) + 0.5
    # Per-row height above ground (v units) and per-column horizontal coverage.
    vrow = (ground[:, None] - pix[None, :]) / pv[:, None]  # (n, rows)
    xcov = np.clip(np.minimum(pix[None, :] + 0.5, (x0 + length)[:, None])
                   - np.maximum(pix[None, :] - 0.5, x0[:, None]), 0.0, 1.0)  # (n, cols)

    # Contact shadow on the road, drawn in a band of rows around the ground line.
    ry = np.maximum(1.5, 0.05 * length)
    band = min(size, int(np.ceil(2.0 * ry.max())) + 3)
    srows = _window(ground, band, size)
    scols = np.broadcast_to(np.arange(size), (n, size))
    q = np.sqrt(((pix[None, None, :] - (x0 + 0.5 * length)[:, None, None])
                 / (0.52 * length)[:, None, None]) ** 2
                + ((srows[:, :, None] + 0.5 - ground[:, None, None]) / ry[:, None, None]) ** 2)
    p, flat = _gather_window(img, srows, scols)
    p *= (1.0 - 0.5 * _ramp((1.0 - q) * ry[:, None, None]))[..., None]
    _scatter_window(img, flat, p)

    # Painted body, lighter towards the roof, with a highlight under the belt line.
    a_body = (_ramp((prof["roof"][:, None, :] - vrow[:, :, None]) * pv[:, None, None])
              * _ramp((vrow - prof["clearance"][:, None])[:, :, None] * pv[:, None, None])
              * xcov[:, None, :])
    rel = vrow / max_height[:, None]
    shade = np.clip(0.84 + 0.28 * rel, 0.8, 1.12)
    belt = prof["belt"][:, None]
    shade += 0.1 * ((vrow > belt - 0.035) & (vrow < belt - 0.012))
    _over(img, a_body, paint[:, None, :] * shade[:, :, None])

    # Dark glass, with a brighter reflection towards the top.
    a_glass = (a_body * prof["glass_col"][:, None, :]
               * _ramp(((prof["roof"][:, None, :] - prof["margin"][:, None, None])
                        - vrow[:, :, None]) * pv[:, None, None])
               * _ramp((vrow - belt - 0.012)[:, :, None] * pv[:, None, None]))
    reflect = 1.0 + 0.7 * np.clip((vrow - belt) / 0.15, 0.0, 1.0)
    glass = _GLASS * (illum[:, None, None] * reflect[..., None])
    _over(img, a_glass, glass)

    # Small rectangles: door and windshield glass, truck bed rails, headlights.
    kinds = np.stack([_GLASS, _LIGHT])
    for k in range(_MAX_RECTS):
        v0 = prof["rect_v"][:, k, 0][:, None]
        v1 = prof["rect_v"][:, k, 1][:, None]
        rows = _ramp((v1 - vrow) * pv[:, None]) * _ramp((vrow - v0) * pv[:, None])
        a_rect = a_body * rows[:, :, None] * prof["rect_col"][:, k][:, None, :]
        color = kinds[prof["rect_kind"][:, k]] * illum[:, None]
        _over(img, a_rect, color)

    # Wheels: dark arch cut into the body, tyre, light hub; each in a small window.
    r_px = prof["wheel_r"] * length * np.sqrt(stretch)
    extent = min(size, int(np.ceil(2.3 * r_px.max())) + 3)
    crop = np.arange(n)[:, None, None]
    wy = ground - r_px
    wrows = _window(wy, extent, size)
    r = r_px[:, None, None]
    for k in range(_MAX_WHEELS):
        wu = prof["wheel_u"][:, k]
        valid = ~np.isnan(wu)
        wx = x0 + np.where(flip, 1.0 - wu, wu) * length
        wx = np.where(valid, wx, 0.5 * size)
        wcols = _window(wx, extent, size)
        d = np.sqrt((wcols[:, None, :] + 0.5 - wx[:, None, None]) ** 2
                    + (wrows[:, :, None] + 0.5 - wy[:, None, None]) ** 2)
        d[~valid] = np.inf
        body = a_body[crop, wrows[:, :, None], wcols[:, None, :]]
        p, flat = _gather_window(img, wrows, wcols)
        _blend(p, body * _ramp(1.15 * r - d), _ARCH)
        _blend(p, _ramp(r - d), _TIRE)
        _blend(p, _ramp(0.5 * r - d), _HUB * illum[:, None])
        _scatter_window(img, flat, p)

    # Sensor noise: windows of a small bank of Gaussian noise at random offsets,
    # which costs a copy instead of drawing 3 * size**2 normals per crop.
    bank = rng.standard_normal((4, 2 * size, 2 * size, 3), dtype=f32)
    pick = rng.integers(0, 4, size=n)
    nrows = (pick * 2 * size + rng.integers(0, size, size=n))[:, None] + np.arange(size)
    ncols = rng.integers(0, size, size=n)[:, None] + np.arange(size)
    flat = (nrows[:, :, None] * (2 * size) + ncols[:, None, :]).reshape(-1)
    noise = np.take(bank.reshape(-1, 3), flat, axis=0).reshape(img.shape)
    noise *= noise_sigma[:, None, None, None]
    img += noise
    np.clip(img, 0.0, 255.0, out=img)
    img += 0.5
    return img.astype(np.uint8)
