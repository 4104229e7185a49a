"""The run report: one self-contained HTML page and the images it shows.

``report/index.html`` opens from disk with no server.  It holds the study's
comparison table (plus silhouette, clusters, noise, runtime), and per result: a
cluster-size chart, a 2-D projection of a seeded sample colored by cluster and
its animated GIF, and per cluster a grid of sampled crops titled with the
cluster id, its size and its interpretation.  Every string that comes from data
(paths, attribute values, ids) is HTML-escaped.  Crops that are missing,
unreadable, URLs or outside the allowed image roots become placeholder tiles and
are counted; they never stop the report.

The run phase saves what the report needs in ``report/data.json`` (sampled rows
per cluster, projection coordinates), so :func:`render_report` can re-render a
run from its directory and the descriptor store.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["render_report", "projection_frames"]

TILE = 64
PER_ROW = 10


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def _palette(n: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return np.array([cmap(i % 20) for i in range(max(n, 1))])


def sizes_chart(sizes: dict[str, int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(sizes, key=lambda k: int(k))
    fig, ax = plt.subplots(figsize=(max(4, min(16, 0.15 * len(labels) + 3)), 2.6))
    colors = ["#999999" if lab == "-1" else "#3b6ea8" for lab in labels]
    ax.bar(range(len(labels)), [sizes[k] for k in labels], color=colors)
    if len(labels) <= 40:
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("cluster (-1: noise)" if "-1" in labels else "cluster")
    ax.set_ylabel("rows")
    fig.tight_layout()
    out = _png(fig)
    plt.close(fig)
    return out


def projection_frames(xyz: np.ndarray, labels: np.ndarray, n_frames: int = 16) -> tuple[bytes, bytes]:
    """A PNG scatter of the first two projection axes and a GIF turning the 3-D projection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    uniq = np.unique(labels)
    pal = _palette(len(uniq))
    color = pal[np.searchsorted(uniq, labels)]
    color[labels == -1] = (0.7, 0.7, 0.7, 0.6)
    lim = float(np.abs(xyz[:, :2]).max() or 1.0) * 1.05 if xyz.size else 1.0

    def frame(theta: float) -> Any:
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        x = xyz[:, 0] * np.cos(theta) + (xyz[:, 2] if xyz.shape[1] > 2 else 0) * np.sin(theta)
        ax.scatter(x, xyz[:, 1], c=color, s=4, linewidths=0)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("projection of a seeded sample, colored by cluster", fontsize=8)
        return fig

    fig = frame(0.0)
    still = _png(fig)
    plt.close(fig)
    images = []
    for i in range(n_frames):
        fig = frame(2 * np.pi * i / n_frames)
        images.append(Image.open(io.BytesIO(_png(fig))).convert("P", palette=Image.Palette.ADAPTIVE))
        plt.close(fig)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=180, loop=0)
    return still, buf.getvalue()


def _placeholder() -> np.ndarray:
    tile = np.full((TILE, TILE, 3), 220, np.uint8)
    idx = np.arange(TILE)
    tile[idx, idx] = tile[idx, TILE - 1 - idx] = 150
    return tile


def crop_grid(tiles: list[np.ndarray | None]) -> bytes:
    """Tiles in rows of :data:`PER_ROW` (placeholders for None), as one PNG."""
    from PIL import Image

    n = max(1, len(tiles))
    rows = (n + PER_ROW - 1) // PER_ROW
    cols = min(n, PER_ROW)
    canvas = np.full((rows * (TILE + 2), cols * (TILE + 2), 3), 255, np.uint8)
    ph = _placeholder()
    for i, t in enumerate(tiles):
        r, c = divmod(i, PER_ROW)
        canvas[r * (TILE + 2) : r * (TILE + 2) + TILE, c * (TILE + 2) : c * (TILE + 2) + TILE] = ph if t is None else t
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}section.result{margin-top:2.5em;border-top:2px solid #3b6ea8}
figure{display:inline-block;margin:0.5em 1em 0.5em 0;vertical-align:top}figcaption{font-size:13px;color:#555}
h4{margin:1.2em 0 0.3em 0;font-size:15px}img{image-rendering:auto}.small{font-size:12px;color:#666}
"""


def render_report(run_dir: str | Path, store: Any = None, *, write: Callable[[str, bytes], Any] | None = None,
                  image_root: str | Path | None = None, run_name: str | None = None) -> dict[str, Any]:
    """Render ``report/index.html`` and its images for the run in ``run_dir``.

    Parameters
    ----------
    run_dir : path
        A run directory holding ``metrics.json`` and ``report/data.json``.
    store : storage.DescriptorStore, optional
        Where the crop index lives (default: the store named in the manifest).
    write : callable, optional
        ``write(relative_name, data)``: how files get into the run (default: written
        straight into ``run_dir``, each replaced atomically).
    image_root : path, optional
        Extra folder crops may be read from (relative paths resolve against their
        batch's index folder).
    run_name : str, optional
        The run's name for the page title (default: the folder's name).

    Returns
    -------
    dict
        ``{"images_shown": n, "placeholders": {reason: count}}``, for the manifest.
    """
    from cluster_lib._interpret import dominant_color
    from storage import CropReader, DescriptorStore

    run_dir = Path(run_dir)
    if write is None:
        def write(name: str, data: bytes) -> None:
            p = run_dir / name
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(p)

    metrics = json.loads((run_dir / "metrics.json").read_text())["results"]
    data = json.loads((run_dir / "report" / "data.json").read_text())
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    store_url = data.get("store") or manifest.get("store", "")
    if store is None:
        store = DescriptorStore(store_url)
    run_name = run_name or run_dir.name
    batch_roots: dict[str, dict[str, str]] = {}
    roots: list[str] = [str(image_root)] if image_root else []
    for name in {r["descriptor"] for r in metrics}:
        dset = store[name]
        batch_roots[name] = {b.id: b.image_root for b in dset.batches}
        roots += [b.image_root for b in dset.batches if b.image_root]
    reader = CropReader(sorted(set(roots)), size=TILE)
    shown = 0

    rows_html = []
    for r in metrics:
        rows_html.append(
            "<tr>" + "".join([
                f"<td class=l><a href='#{_e(r['id'])}'>{_e(r['descriptor'])}</a></td>",
                f"<td>{_e(r['n_dims'])}</td>",
                f"<td class=l>{_e(r['id'].split('__', 1)[1])}</td>",
                f"<td>{_fmt(r['calinski_harabasz'], '.1f')}</td>",
                f"<td>{_fmt(r['davies_bouldin'], '.3f')}</td>",
                f"<td>{_fmt(r['silhouette'], '.3f')}</td>",
                f"<td>{_e(r['n_clusters'])}</td>",
                f"<td>{r['noise_fraction']:.1%}</td>",
                f"<td>{_fmt(r.get('seconds'), '.1f')}</td>",
                f"<td class=l>{_e(r['interpretation'])}</td>",
            ]) + "</tr>"
        )
    sections = []
    for r in metrics:
        rid = r["id"]
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in rid)
        dset = store[r["descriptor"]]
        write(f"report/img/{safe}_sizes.png", sizes_chart(r["sizes"]))
        parts = [f"<section class=result id='{_e(rid)}'><h2>{_e(rid)}</h2>",
                 f"<p>{_e(r['method'])} on {_e(r['descriptor'])} ({_e(r['n_rows'])} rows, {_e(r['n_dims'])} dims): "
                 f"{_e(r['n_clusters'])} clusters, interpretation <b>{_e(r['interpretation'])}</b>.</p>",
                 f"<figure><img src='img/{safe}_sizes.png' alt='cluster sizes of {_e(rid)}'>"
                 f"<figcaption>cluster sizes</figcaption></figure>"]
        proj = data["results"][rid].get("projection")
        if proj and proj["labels"]:
            still, gif = projection_frames(np.asarray(proj["xyz"]), np.asarray(proj["labels"]))
            write(f"report/img/{safe}_projection.png", still)
            write(f"report/img/{safe}_projection.gif", gif)
            parts.append(f"<figure><img src='img/{safe}_projection.png' alt='projection of {_e(rid)}'>"
                         f"<figcaption>2-D projection (PCA of a seeded sample)</figcaption></figure>"
                         f"<figure><img src='img/{safe}_projection.gif' alt='animated projection of {_e(rid)}'>"
                         f"<figcaption>the same sample, turning through the third axis</figcaption></figure>")
        samples = data["results"][rid]["samples"]
        all_rows = sorted({int(x) for rows in samples.values() for x in rows})
        index = dset.read_index(rows=all_rows, columns=["image"]) if all_rows else None
        where = {int(row): (img, bid) for row, img, bid in
                 zip(index["row"], index["image"], index["batch_id"])} if index is not None else {}
        clusters_info = r.get("clusters", {})
        for label in sorted(samples, key=lambda k: (int(k) == -1, -r["sizes"].get(k, 0), int(k))):
            tiles = []
            for row in samples[label]:
                img, bid = where[int(row)]
                tiles.append(reader.read(str(img), batch_roots[r["descriptor"]].get(bid)))
            real = [t for t in tiles if t is not None]
            shown += len(real)
            color, rgb = dominant_color(np.stack(real)) if real else ("unknown", (128, 128, 128))
            write(f"report/img/{safe}_cluster{label}.png", crop_grid(tiles))
            info = clusters_info.get(str(label)) or clusters_info.get(label) or {}
            attrs = ", ".join(f"{_e(a)}: {_e(v['value'])} ({v['share']:.0%})" for a, v in sorted(info.items()))
            title = "noise" if label == "-1" else f"Images from cluster {_e(label)}"
            swatch = f"<span style='display:inline-block;width:12px;height:12px;background:rgb{rgb}'></span>"
            parts.append(
                f"<h4>{title} — {_e(r['sizes'].get(label, 0))} crops; dominant color {swatch} {_e(color)}"
                f"{'; ' + attrs if attrs else ''}</h4>"
                f"<img src='img/{safe}_cluster{_e(label)}.png' alt='crops of cluster {_e(label)}' "
                f"data-cluster='{_e(label)}'>"
            )
        parts.append("</section>")
        sections.append("\n".join(parts))

    head = ("<tr><th class=l>Descriptor</th><th>Size</th><th class=l>Method</th><th>calinski_harabasz_score</th>"
            "<th>davies_bouldin_score</th><th>silhouette</th><th>clusters</th><th>noise</th><th>runtime (s)</th>"
            "<th class=l>cluster interpretation</th></tr>")
    problems = dict(reader.problems)
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>ivc run {_e(run_name)}</title><style>{CSS}</style></head><body>"
        f"<h1>Clustering report</h1><p class=small>run {_e(run_name)}; store {_e(store_url)}; "
        f"{shown} crops shown, {sum(problems.values())} placeholders"
        f"{' (' + ', '.join(f'{_e(k)}: {v}' for k, v in sorted(problems.items())) + ')' if problems else ''}.</p>"
        f"<table id=results><thead>{head}</thead><tbody>{''.join(rows_html)}</tbody></table>"
        + "\n".join(sections) + "</body></html>"
    )
    write("report/index.html", page.encode("utf-8"))
    return {"images_shown": shown, "placeholders": problems}
