"""Reading crop images for reports, with the safety rules of a file reader that takes paths from data.

Image paths come from the crop index, that is from data: a relative path resolves
against its batch's index folder (or a configured image root); a path that
resolves outside the allowed roots, a URL, or a file that is missing or
unreadable is not read, and the caller gets ``None`` (a placeholder tile) and a
count of why.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

__all__ = ["CropReader"]


class CropReader:
    """Reads crops as RGB tiles of a fixed size.

    Parameters
    ----------
    roots : list of path
        Folders images may be read from; relative paths resolve against the first
        root given for their batch (see :meth:`read`).
    size : int
        Side of the square tiles returned.
    """

    def __init__(self, roots: list[str | os.PathLike[str]], size: int = 64) -> None:
        self.roots = [Path(r).resolve() for r in roots if r]
        self.size = size
        self.problems: Counter[str] = Counter()

    def resolve(self, image: str, root: str | os.PathLike[str] | None = None) -> Path | None:
        """The file ``image`` names, if it lies under an allowed root; else None (counted)."""
        if "://" in image:
            self.problems["url"] += 1
            return None
        p = Path(image)
        if not p.is_absolute():
            base = Path(root) if root else (self.roots[0] if self.roots else None)
            if base is None:
                self.problems["no_root"] += 1
                return None
            p = base / p
        p = p.resolve()
        if not any(p == r or r in p.parents for r in self.roots):
            self.problems["outside_root"] += 1
            return None
        return p

    def read(self, image: str, root: str | os.PathLike[str] | None = None) -> np.ndarray | None:
        """A (size, size, 3) uint8 tile of the crop, or None if it may not or cannot be read."""
        from PIL import Image, UnidentifiedImageError

        p = self.resolve(image, root)
        if p is None:
            return None
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((self.size, self.size))
                tile = Image.new("RGB", (self.size, self.size), (255, 255, 255))
                tile.paste(im, ((self.size - im.width) // 2, (self.size - im.height) // 2))
                return np.asarray(tile)
        except FileNotFoundError:
            self.problems["missing"] += 1
        except (UnidentifiedImageError, OSError, ValueError):
            self.problems["unreadable"] += 1
        return None
