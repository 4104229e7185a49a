"""Synthetic vehicle crops with known colour and type, and large benchmark sets.

There is no public vehicle data to ship, so the project renders its own
side-view vehicle crops, computes descriptors from their pixels, and writes
them in the layout of a nightly batch (``index.csv`` plus one ``.npy`` per
descriptor). Everything is deterministic given a seed.
"""

from __future__ import annotations

from ._crops import CropSet, make_crops
from ._features import DESCRIPTOR_DIMS, extract_descriptors
from ._large import LargeSet, make_large_descriptors
from ._render import COLORS, N_CAMERAS, TYPES, render_crops

__all__ = [
    "COLORS",
    "DESCRIPTOR_DIMS",
    "N_CAMERAS",
    "TYPES",
    "CropSet",
    "LargeSet",
    "extract_descriptors",
    "make_crops",
    "make_large_descriptors",
    "render_crops",
]
