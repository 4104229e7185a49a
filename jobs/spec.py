"""The job spec: what to cluster, how, and where to put the results.

A spec is a YAML mapping (see ../shared/DESIGN.md); paths in it are relative to
the spec file.  :func:`load_spec` validates all of it before anything runs: an
unknown key, method or parameter, or a bad value raises :class:`SpecError`
whose one-line message names the file and the key and says what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage import BadInputError

__all__ = ["JobSpec", "MethodSpec", "SpecError", "load_spec", "spec_from_mapping"]


class SpecError(BadInputError):
    """A job spec that cannot run; the message names the file and key."""


def _fail(source: str | None, key: str, message: str) -> SpecError:
    return SpecError(source, f"key {key!r}: {message}")


def _check_keys(source: str | None, where: str, got: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    for key in got:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise _fail(source, name, f"unknown key; expected one of: {', '.join(sorted(allowed))}")


def _int(source, key, value, low, high=None, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        extra = " or null" if allow_none else ""
        raise _fail(source, key, f"{value!r} is not allowed; expected an integer {rng}{extra}")
    return value


def _bool(source, key, value):
    if not isinstance(value, bool):
        raise _fail(source, key, f"{value!r} is not allowed; expected true or false")
    return value


@dataclass(frozen=True)
class MethodSpec:
    """One method entry: the registry name, its parameters and the result id."""

    method: str
    params: dict[str, Any]
    id: str

    def estimator(self, random_state: int | None = None) -> Any:
        from cluster_lib._registry import make_estimator

        return make_estimator(self.method, self.params, defaults={"random_state": random_state})


PREPROCESS_KEYS = {"pca": None, "normalize": False}
SCORING_KEYS = {"silhouette_sample": 10000}
REPORT_KEYS = {"crops_per_cluster": 50, "projection_sample": 5000, "image_root": None}
CLUSTER_KEYS = {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "4GiB", "tls": None}
TLS_KEYS = {"ca_file": None, "cert": None, "key": None}
TOP_KEYS = {
    "store": None, "runs": "runs", "descriptors": None, "preprocess": {}, "methods": None,
    "scoring": {}, "report": {}, "cluster": {}, "random_state": 0,
}


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec; every path is absolute.

    Attributes
    ----------
    store : str
        Descriptor store (path or fsspec URL).
    runs : Path
        Folder of run directories (and ``latest``).
    descriptors : tuple of str
    methods : tuple of MethodSpec
    pca : int or None
        Reduce every descriptor to at most this many dims first.
    normalize : bool
        L2-normalise rows (after PCA) for every method.
    silhouette_sample : int
    crops_per_cluster, projection_sample : int
    image_root : Path or None
        Crop images are only read from under this folder (default: next to the store's
        index paths as given; relative image paths resolve against it).
    cluster : dict
        Embedded LocalCluster options: n_workers, threads_per_worker, memory_limit; tls.
    random_state : int or None
    source : str or None
        The spec file, for messages.
    raw : dict
        The spec as given, for the run's manifest.
    """

    store: str
    runs: Path
    descriptors: tuple[str, ...]
    methods: tuple[MethodSpec, ...]
    pca: int | None = None
    normalize: bool = False
    silhouette_sample: int = 10000
    crops_per_cluster: int = 50
    projection_sample: int = 5000
    image_root: Path | None = None
    cluster: dict[str, Any] = field(default_factory=dict)
    random_state: int | None = 0
    source: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def result_ids(self) -> list[str]:
        """``<descriptor>__<method id>`` of every result, in run order."""
        return [f"{d}__{m.id}" for d in self.descriptors for m in self.methods]


def _resolve(base: Path, value: str) -> str:
    if "://" in value:
        return value
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p).resolve())


def spec_from_mapping(data: Any, *, base: Path, source: str | None = None) -> JobSpec:
    """Validate a spec mapping; relative paths resolve against ``base``.

    Raises
    ------
    SpecError
        Naming the key and what is allowed.
    """
    from cluster_lib._registry import method_id, method_names, split_entry

    if not isinstance(data, Mapping):
        raise SpecError(source, f"expected a YAML mapping of keys ({', '.join(sorted(TOP_KEYS))}); got {type(data).__name__}")
    _check_keys(source, "", data, TOP_KEYS)
    for required in ("store", "descriptors", "methods"):
        if required not in data:
            raise _fail(source, required, "missing; every job spec names its store, descriptors and methods")
    if not isinstance(data["store"], str) or not data["store"]:
        raise _fail(source, "store", f"{data['store']!r} is not allowed; expected a path or URL")
    runs = data.get("runs", TOP_KEYS["runs"])
    if not isinstance(runs, str) or not runs:
        raise _fail(source, "runs", f"{runs!r} is not allowed; expected a folder path")
    descriptors = data["descriptors"]
    if isinstance(descriptors, str):
        descriptors = [descriptors]
    if not isinstance(descriptors, list) or not descriptors or not all(isinstance(d, str) and d for d in descriptors):
        raise _fail(source, "descriptors", f"{descriptors!r} is not allowed; expected a list of descriptor names")
    if len(set(descriptors)) != len(descriptors):
        raise _fail(source, "descriptors", "a descriptor is listed twice")

    pre = data.get("preprocess") or {}
    if not isinstance(pre, Mapping):
        raise _fail(source, "preprocess", f"expected a mapping with keys {', '.join(PREPROCESS_KEYS)}")
    _check_keys(source, "preprocess", pre, PREPROCESS_KEYS)
    pca = _int(source, "preprocess.pca", pre.get("pca"), 1, allow_none=True)
    normalize = _bool(source, "preprocess.normalize", pre.get("normalize", False))

    methods_raw = data["methods"]
    if not isinstance(methods_raw, list) or not methods_raw:
        raise _fail(source, "methods", f"expected a list of method entries, e.g. {{method: kmeans, n_clusters: 8}} "
                    f"(methods: {', '.join(method_names())})")
    methods = []
    seen = set()
    for i, entry in enumerate(methods_raw):
        key = f"methods[{i}]"
        try:
            method, params = split_entry(entry)
            m = MethodSpec(method, params, method_id(entry))
            m.estimator(random_state=data.get("random_state", 0))  # validates name, parameters and values
        except ValueError as e:
            raise _fail(source, key, str(e)) from None
        if m.id in seen:
            raise _fail(source, key, f"result id {m.id!r} repeats an earlier entry; give one of them an 'id' key")
        seen.add(m.id)
        methods.append(m)

    scoring = data.get("scoring") or {}
    if not isinstance(scoring, Mapping):
        raise _fail(source, "scoring", f"expected a mapping with keys {', '.join(SCORING_KEYS)}")
    _check_keys(source, "scoring", scoring, SCORING_KEYS)
    sil = _int(source, "scoring.silhouette_sample", scoring.get("silhouette_sample", 10000), 0)

    report = data.get("report") or {}
    if not isinstance(report, Mapping):
        raise _fail(source, "report", f"expected a mapping with keys {', '.join(REPORT_KEYS)}")
    _check_keys(source, "report", report, REPORT_KEYS)
    crops = _int(source, "report.crops_per_cluster", report.get("crops_per_cluster", 50), 0, 1000)
    proj = _int(source, "report.projection_sample", report.get("projection_sample", 5000), 0, 10**6)
    image_root = report.get("image_root")
    if image_root is not None and (not isinstance(image_root, str) or not image_root):
        raise _fail(source, "report.image_root", f"{image_root!r} is not allowed; expected a folder path")

    cluster = dict(data.get("cluster") or {})
    _check_keys(source, "cluster", cluster, CLUSTER_KEYS)
    _int(source, "cluster.n_workers", cluster.get("n_workers", 2), 1, 512)
    _int(source, "cluster.threads_per_worker", cluster.get("threads_per_worker", 1), 1, 512)
    mem = cluster.get("memory_limit", "4GiB")
    try:
        from dask.utils import parse_bytes

        if mem not in ("auto", None) and parse_bytes(mem) <= 0:
            raise ValueError
    except (ValueError, TypeError):
        raise _fail(source, "cluster.memory_limit", f"{mem!r} is not allowed; expected a size such as 4GiB or 'auto'") from None
    tls = cluster.get("tls")
    if tls is not None:
        if not isinstance(tls, Mapping):
            raise _fail(source, "cluster.tls", f"expected a mapping with keys {', '.join(TLS_KEYS)}")
        _check_keys(source, "cluster.tls", tls, TLS_KEYS)
        cluster["tls"] = {k: _resolve(base, v) for k, v in tls.items() if v}

    random_state = data.get("random_state", 0)
    if random_state is not None:
        _int(source, "random_state", random_state, 0, 2**32 - 1)

    return JobSpec(
        store=_resolve(base, data["store"]),
        runs=Path(_resolve(base, runs)),
        descriptors=tuple(descriptors),
        methods=tuple(methods),
        pca=pca,
        normalize=normalize,
        silhouette_sample=sil,
        crops_per_cluster=crops,
        projection_sample=proj,
        image_root=Path(_resolve(base, image_root)) if image_root else None,
        cluster=cluster,
        random_state=random_state,
        source=source,
        raw=dict(data),
    )


def load_spec(path: str | os.PathLike[str]) -> JobSpec:
    """Read and validate a job spec file.

    Raises
    ------
    SpecError
        Missing or unparsable file, or an invalid spec (the message names the key).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), "no such file; expected a job spec (YAML)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise SpecError(str(p), f"not valid YAML{at}; expected a mapping of job keys") from None
    return spec_from_mapping(data, base=p.parent.resolve(), source=str(p))
