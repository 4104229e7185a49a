"""The clustering methods a job spec can name, and how an entry becomes an estimator.

A job spec lists methods as mappings such as ``{method: dbscan, metric: cosine,
eps: auto}``: the ``method`` key names an entry of :data:`METHODS`, an optional
``id`` key names the result, and every other key is a parameter of the
estimator.  Unknown methods and parameters, and values outside a parameter's
constraints, are refused before any data is read, with a message that lists
what is allowed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["METHODS", "method_names", "estimator_class", "make_estimator", "method_id", "split_entry"]

#: method name -> "module:class" of its estimator (imported when first used)
METHODS: dict[str, str] = {
    "kmeans": "cluster_lib._kmeans:KMeans",
    "minibatch_kmeans": "cluster_lib._minibatch:MiniBatchKMeans",
    "dbscan": "cluster_lib._dbscan:DBSCAN",
    "agglomerative": "cluster_lib._agglomerative:AgglomerativeClustering",
    "gmm": "cluster_lib._gmm:GaussianMixture",
}

#: keys of a method entry that are not estimator parameters
ENTRY_KEYS = ("method", "id")


def method_names() -> list[str]:
    """The method names a job spec may use, sorted."""
    return sorted(METHODS)


def estimator_class(method: str) -> type:
    """The estimator class of ``method``.

    Raises
    ------
    ValueError
        For an unknown method; the message lists the valid ones.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of: {', '.join(method_names())}")
    module, _, name = METHODS[method].partition(":")
    return getattr(importlib.import_module(module), name)


def split_entry(entry: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(method, params)`` of a job-spec entry: everything but ``method`` and ``id`` is a parameter."""
    if not isinstance(entry, Mapping) or "method" not in entry:
        raise ValueError(f"a method entry needs a 'method' key (one of: {', '.join(method_names())}); got {entry!r}")
    params = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    return entry["method"], params


def make_estimator(method: str, params: Mapping[str, Any] | None = None, *,
                   defaults: Mapping[str, Any] | None = None, validate: bool = True) -> Any:
    """Build the estimator of ``method`` with ``params``.

    Parameters
    ----------
    method : str
        One of :func:`method_names`.
    params : mapping, optional
        Estimator parameters. An unknown name raises ``ValueError`` listing the valid ones.
    defaults : mapping, optional
        Parameters applied where the estimator has them and ``params`` does not set
        them (a job's ``random_state``, say); ignored by estimators without them.
    validate : bool, default=True
        Check every value against the estimator's parameter constraints now,
        rather than at ``fit``.

    Returns
    -------
    estimator
        Unfitted, with the scikit-learn API.
    """
    cls = estimator_class(method)
    valid = sorted(cls().get_params(deep=False))
    params = dict(params or {})
    for key in params:
        if key not in valid:
            raise ValueError(
                f"method {method!r} has no parameter {key!r}; valid parameters: {', '.join(valid)}"
            )
    for key, value in (defaults or {}).items():
        if key in valid and key not in params:
            params[key] = value
    est = cls(**params)
    if validate:
        from cluster_lib._compat import validate_params

        try:
            validate_params(est)
        except (ValueError, TypeError) as e:
            raise ValueError(f"method {method!r}: {e}") from None
    return est


def method_id(entry: Mapping[str, Any]) -> str:
    """The id of a method entry: its ``id`` key, else the method name plus its metric if set.

    >>> method_id({"method": "dbscan", "metric": "cosine"})
    'dbscan-cosine'
    >>> method_id({"method": "kmeans", "id": "km100", "n_clusters": 100})
    'km100'
    """
    if entry.get("id"):
        return str(entry["id"])
    method = str(entry.get("method"))
    return f"{method}-{entry['metric']}" if entry.get("metric") else method
