"""Automatic interpretation: does a clustering follow an attribute of the crops?

Where the crop index has attribute columns (color, type, camera...), a result is
scored against each one from the contingency table of (cluster, attribute value),
counted partition-wise: adjusted mutual information (AMI) and purity.  A result is
named ``"by <attribute>"`` when one attribute clearly explains it, else ``"no"``;
each cluster is named by the dominant value of each attribute and its share.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

__all__ = ["contingency_tables", "interpret", "attribute_scores", "dominant_color", "NAMED_COLORS", "MIN_AMI", "MIN_MARGIN"]

#: An attribute explains a clustering when its AMI is at least this ...
MIN_AMI = 0.4
#: ... and beats every other attribute's by at least this much.
MIN_MARGIN = 0.15


def _chunk_table(labels: np.ndarray, codes: np.ndarray, label_values: np.ndarray, n_codes: int) -> np.ndarray:
    li = np.searchsorted(label_values, labels)
    return np.bincount(li * n_codes + codes, minlength=len(label_values) * n_codes).reshape(-1, n_codes)


def contingency_tables(labels: Any, codes: dict[str, tuple[Any, int]], label_values: np.ndarray) -> dict[str, np.ndarray]:
    """Counts of (cluster label, attribute code) for every attribute, in one pass over the labels.

    Parameters
    ----------
    labels : dask or numpy array of shape (n_samples,), int
    codes : dict
        Attribute name -> (codes, n_codes): a dask or numpy int array of shape
        (n_samples,) with values in [0, n_codes), ideally chunked like ``labels``.
    label_values : ndarray of shape (m,)
        Sorted distinct labels (from the cluster sizes).

    Returns
    -------
    dict
        Attribute name -> ndarray of shape (m, n_codes), int64.
    """
    labels = labels if isinstance(labels, da.Array) else da.from_array(np.asarray(labels), chunks=1 << 20)
    label_blocks = labels.to_delayed().ravel()
    parts = {}
    for name, (col, n_codes) in codes.items():
        col = col if isinstance(col, da.Array) else da.from_array(np.asarray(col), chunks=labels.chunks)
        if col.chunks != labels.chunks:
            col = col.rechunk(labels.chunks)
        parts[name] = [
            dask.delayed(_chunk_table, pure=True)(lb, cb, label_values, n_codes)
            for lb, cb in zip(label_blocks, col.to_delayed().ravel())
        ]
    (counted,) = dask.compute(parts)
    return {name: np.sum(tables, axis=0) for name, tables in counted.items()}


def attribute_scores(table: np.ndarray) -> dict[str, float]:
    """AMI, NMI and purity of the clustering (rows of ``table``) against the attribute (columns)."""
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    counts = table.ravel()
    r, c = np.divmod(np.arange(counts.size), table.shape[1])
    # the per-row labels are recovered from the table: ints, not descriptors
    lab = np.repeat(r, counts)
    att = np.repeat(c, counts)
    n = int(counts.sum())
    purity = float(table.max(axis=1).sum() / n) if n else float("nan")
    if n == 0 or table.shape[0] < 2 and table.shape[1] < 2:
        return {"ami": 0.0, "nmi": 0.0, "purity": purity}
    return {
        "ami": float(adjusted_mutual_info_score(att, lab)),
        "nmi": float(normalized_mutual_info_score(att, lab)),
        "purity": purity,
    }


def interpret(tables: dict[str, tuple[np.ndarray, list[str]]], label_values: np.ndarray) -> dict[str, Any]:
    """Name a clustering by the attribute that explains it, and each cluster by its dominant values.

    Parameters
    ----------
    tables : dict
        Attribute name -> (contingency table (clusters x values), the values' names).
    label_values : ndarray
        The cluster labels of the table rows.

    Returns
    -------
    dict
        ``interpretation`` ("by <attribute>" or "no"), ``attributes`` (scores per
        attribute) and ``clusters`` ({label: {attribute: {"value", "share"}}}).
    """
    scores = {name: attribute_scores(t) for name, (t, _) in tables.items()}
    ranked = sorted(scores, key=lambda a: scores[a]["ami"], reverse=True)
    verdict = "no"
    if ranked:
        best = scores[ranked[0]]["ami"]
        second = scores[ranked[1]]["ami"] if len(ranked) > 1 else 0.0
        if best >= MIN_AMI and best - second >= MIN_MARGIN:
            verdict = f"by {ranked[0]}"
    clusters: dict[int, dict[str, dict[str, Any]]] = {}
    for i, label in enumerate(label_values):
        entry = {}
        for name, (t, values) in tables.items():
            row = t[i]
            total = row.sum()
            if total:
                j = int(row.argmax())
                entry[name] = {"value": values[j], "share": float(row[j] / total)}
        clusters[int(label)] = entry
    return {"interpretation": verdict, "attributes": scores, "clusters": clusters}


#: Named colors for the dominant color of a cluster's crops (sRGB).
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (235, 235, 235), "silver": (170, 172, 176), "gray": (110, 110, 112), "black": (25, 25, 28),
    "red": (190, 30, 35), "orange": (230, 120, 30), "yellow": (235, 200, 40), "green": (40, 140, 60),
    "blue": (35, 70, 170), "brown": (110, 70, 40), "purple": (110, 50, 140),
}


def dominant_color(tiles: np.ndarray) -> tuple[str, tuple[int, int, int]]:
    """The named color of the commonest foreground color of a cluster's crops.

    Per crop, the background is estimated from its border pixels; pixels that
    differ clearly from it are foreground (the vehicle). Foreground colors of all
    crops are binned (8 levels per channel) and the fullest bin's mean color is
    matched to the nearest entry of :data:`NAMED_COLORS`.

    Parameters
    ----------
    tiles : ndarray of shape (n, h, w, 3), uint8
        Crops of one cluster (placeholders excluded).

    Returns
    -------
    name : str
    rgb : tuple of int
        The mean color of the fullest bin.
    """
    if tiles.size == 0:
        return "unknown", (128, 128, 128)
    t = tiles.astype(np.int16)
    border = np.concatenate([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], axis=1)
    bg = np.median(border, axis=1)[:, None, None, :]
    fg = np.abs(t - bg).sum(-1) > 90
    pix = t[fg] if fg.any() else t.reshape(-1, 3)
    bins = (pix // 32) @ np.array([64, 8, 1])
    top = np.bincount(bins, minlength=512).argmax()
    rgb = pix[bins == top].mean(axis=0)
    names = list(NAMED_COLORS)
    ref = np.array([NAMED_COLORS[n] for n in names], dtype=np.float64)
    wts = np.array([0.3, 0.59, 0.11]) ** 0.5  # channels weighted like luma
    j = int(np.argmin((((ref - rgb) * wts) ** 2).sum(1)))
    return names[j], tuple(int(v) for v in rgb)
