"""Errors raised by the storage layer."""

from __future__ import annotations

import os

__all__ = ["BadInputError", "StoreError"]


class BadInputError(ValueError):
    """Input that cannot be stored as given.

    The message is one line naming the file (and the first bad row or key)
    and what was expected; the command line turns it into exit status 2.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file (or store key) that holds the bad input.
    message : str
        What is wrong and what was expected, without the path.
    """

    def __init__(self, path: str | os.PathLike[str] | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.detail = message
        text = message if self.path is None else f"{self.path}: {message}"
        super().__init__(" ".join(text.split()))


class StoreError(RuntimeError):
    """The store is in a state that an operation cannot proceed from."""
