"""Small helpers shared by the estimators for moving between numpy and dask arrays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

__all__ = [
    "as_dask_2d",
    "check_fitted_input",
    "row_blocks",
    "tree_reduce",
    "sum_values",
    "persist_with",
    "maybe_persist",
    "sample_rows",
    "total_worker_memory",
    "blocks_by_worker",
]

logger = logging.getLogger(__name__)

#: Row chunk size for numpy input, in MiB of data (the store's default chunk size).
NUMPY_CHUNK_MIB = 32


def as_dask_2d(X: Any, name: str = "X") -> tuple[da.Array, bool]:
    """Return ``X`` as a 2-D floating dask array chunked by rows only.

    Parameters
    ----------
    X : array-like or dask array of shape (n_samples, n_features)

    Numpy input goes through ``sklearn.utils.check_array`` (which also refuses NaN and
    inf); dask input is only checked for shape and dtype, since finding a NaN would
    cost a pass over the data.

    Returns
    -------
    X : dask.array.Array
        Float32 or float64 (other numeric dtypes become float64, like scikit-learn).
    was_numpy : bool
        True if the input was not a dask array (estimators then return numpy results).
    """
    was_numpy = not isinstance(X, da.Array)
    if was_numpy:
        from sklearn.utils import check_array

        # In memory, scikit-learn's checks are cheap and give its users' familiar errors
        # (sparse, complex, object, 1-D, NaN or inf input).
        X = check_array(X, dtype=[np.float64, np.float32], input_name=name)
        rows = max(1, int(NUMPY_CHUNK_MIB * 2**20 // max(1, X.shape[1] * X.dtype.itemsize)))
        X = da.from_array(X, chunks=(rows, X.shape[1]))
    else:
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead: {name}.shape={X.shape}.")
        if X.dtype.kind != "f" or X.dtype.itemsize < 4:
            X = X.astype(np.float64)
        if len(X.chunks[1]) != 1:
            X = X.rechunk({1: -1})
    if any(np.isnan(c) for c in X.shape):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first.")
    return X, was_numpy


def check_fitted_input(estimator: Any, X: Any, attribute: str) -> tuple[da.Array, bool]:
    """``X`` for a fitted estimator's predict/transform: fitted, 2-D, and as wide as the fit data.

    Returns
    -------
    X : dask.array.Array
    was_numpy : bool
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, attribute)
    X, was_numpy = as_dask_2d(X)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X, was_numpy


def row_blocks(X: da.Array) -> list[Any]:
    """The row blocks of a dask array chunked by rows only, as delayed objects."""
    return list(X.to_delayed().ravel())


def tree_reduce(parts: Sequence[Any], combine: Callable[[list[Any]], Any], split_every: int = 8, *,
                name: str | None = None) -> Any:
    """Combine delayed partial results in a tree of fan-in ``split_every``; returns one delayed.

    ``combine`` takes a list of partial results and must be associative. With ``name``,
    the combining tasks get the keys ``(name, level, i)`` (unique to one reduction).
    """
    if split_every < 2:
        raise ValueError(f"split_every={split_every} should be >= 2.")
    level = list(parts)
    if not level:
        raise ValueError("nothing to reduce")
    depth = 0
    while len(level) > 1:
        level = [
            dask.delayed(combine, pure=True)(
                level[i : i + split_every],
                **({"dask_key_name": (name, depth, i // split_every)} if name else {}),
            )
            for i in range(0, len(level), split_every)
        ]
        depth += 1
    return level[0]


def sum_values(values: list[Any]) -> float:
    """The sum of a list of numbers, as a float (a combine step for :func:`tree_reduce`)."""
    return float(np.sum(values))


def persist_with(labels: da.Array, *small: Any) -> tuple[da.Array, list[Any]]:
    """Keep per-row ``labels`` in the workers' memory and compute ``small`` results of the same pass.

    Labels cost 4 bytes a row, so they are kept even when X is streamed from its
    source: a lazy labels array would re-run the whole assignment pass (reading X
    again) on every later use (scores, sizes, writing them out).
    """
    labels, *kept = dask.persist(labels, *small)
    return labels, list(dask.compute(*kept))


def blocks_by_worker(X: da.Array, per_worker: int = 2) -> list[list[int]] | None:
    """Group the row blocks of a persisted ``X`` by the worker holding them.

    One task per group (``per_worker`` groups per worker) instead of one per block
    cuts the scheduler's share of a pass; each group's task runs where its blocks
    are, so no rows move. Returns None (one task per block) without a distributed
    client, or when X is not held in the workers' memory (streamed from its source).
    """
    try:
        from distributed import default_client, futures_of

        client = default_client()
    except (ImportError, ValueError):
        return None
    futures = {f.key: f for f in futures_of(X)}
    keys = [b.key for b in row_blocks(X)]
    if not futures or any(k not in futures for k in keys):
        return None
    who = client.who_has([futures[k] for k in keys])
    by_worker: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        holders = who.get(key) or ()
        if not holders:
            return None
        by_worker.setdefault(sorted(holders)[0], []).append(i)
    groups: list[list[int]] = []
    for idx in by_worker.values():
        m = max(1, min(per_worker, len(idx)))
        groups += [idx[j::m] for j in range(m)]
    return groups


def total_worker_memory() -> float | None:
    """Total memory limit of the workers of the default distributed client, or None."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return None
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    return float(sum(limits)) if limits and all(limits) else None


def maybe_persist(X: da.Array, persist: bool | str, fraction: float = 0.5) -> tuple[da.Array, bool]:
    """Persist ``X`` if asked to, or with ``"auto"`` if it fits in ``fraction`` of the workers' memory.

    Without a distributed client, ``"auto"`` persists when ``X`` takes under a quarter
    of this machine's memory.

    Returns
    -------
    X : dask.array.Array
    persisted : bool
    """
    if persist is False:
        return X, False
    if persist == "auto":
        budget = total_worker_memory()
        if budget is None:
            import psutil

            budget = psutil.virtual_memory().total / 2
        if X.nbytes > fraction * budget:
            logger.info("streaming %.0f MiB from its source on every pass (budget %.0f MiB)",
                        X.nbytes / 2**20, fraction * budget / 2**20)
            return X, False
    X = X.persist()
    _rebalance(X)
    return X, True


def _rebalance(X: da.Array) -> None:
    """Spread a persisted array's chunks evenly over the workers.

    Persisted chunks land where their tasks ran, which can leave one worker with
    most of them; every later pass would then wait for that worker.
    """
    try:
        from distributed import default_client, futures_of, wait

        client = default_client()
    except (ImportError, ValueError):
        return
    futures = futures_of(X)
    if not futures:
        return
    wait(futures)
    if len(client.scheduler_info(n_workers=-1).get("workers", {})) > 1:
        client.rebalance(futures)


def sample_rows(X: da.Array, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Read ``size`` distinct random rows of ``X`` into memory.

    Returns
    -------
    rows : ndarray of shape (size,)
        Sorted positions of the sampled rows.
    sample : ndarray of shape (size, n_features)
    """
    n = X.shape[0]
    size = min(size, n)
    rows = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
    return rows, np.asarray(X[rows].compute())
