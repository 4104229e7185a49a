"""The report: opened in a real browser, escaped, and safe with hostile or missing crop paths."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jobs.run import run_job
from storage import ingest

from .conftest import write_spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, crop_store, cluster):
    from distributed import Client

    root = tmp_path_factory.mktemp("report")
    spec = write_spec(root / "job.yaml", crop_store, descriptors=["color", "generic"],
                      methods=[{"method": "kmeans", "n_clusters": 7}, {"method": "minibatch_kmeans", "n_clusters": 5}],
                      report={"crops_per_cluster": 20, "projection_sample": 400})
    with Client(cluster, set_as_default=True) as c:
        return run_job(spec, client=c, echo=lambda s: None)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: run tests/install-browser.sh")
def test_report_in_a_real_browser(report_run):
    from playwright.sync_api import sync_playwright

    index = report_run.path / "report" / "index.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            n_images = page.evaluate("document.images.length")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            rows = page.locator("#results tbody tr").all_inner_texts()
            titles = page.locator("h4").all_inner_texts()
        finally:
            browser.close()
    assert broken == []
    results = report_run.results
    n_clusters = sum(len(r["sizes"]) for r in results)
    # per result: sizes chart, projection still and GIF; per cluster: one grid
    assert n_images == 3 * len(results) + n_clusters
    assert len(rows) == len(results) == 4
    assert [r.split("\t")[2] for r in rows] == ["kmeans", "minibatch_kmeans"] * 2
    assert any(t.startswith("Images from cluster ") for t in titles)
    interp = {r["id"]: r["interpretation"] for r in results}
    assert interp["color__kmeans"] == "by color" and interp["generic__kmeans"] == "no"
    assert all(r.split("\t")[-1] == interp[f"{r.split(chr(9))[0]}__{r.split(chr(9))[2]}"] for r in rows)


def test_report_counts_crops_and_names_dominant_colors(report_run):
    manifest = json.loads((report_run.path / "manifest.json").read_text())
    assert manifest["report"]["placeholders"] == {}
    assert manifest["report"]["images_shown"] > 0
    page = (report_run.path / "report" / "index.html").read_text()
    for color in ("red", "blue", "yellow", "green"):
        assert "dominant color <span style='display:inline-block;width:12px;height:12px;background:rgb" in page
        assert f"</span> {color}; " in page, color


def test_hostile_index_is_escaped_and_confined(tmp_path, client):
    """Index strings are HTML-escaped; paths outside the index folder, URLs and missing files are not read."""
    from PIL import Image

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "crops").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(secret)
    n = 60
    X = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(8, 1, (30, 4))]).astype(np.float32)
    np.save(data / "x.npy", X)
    lines = ["image,label"]
    for i in range(n):
        if i % 4 == 0:
            path = "../secret.png"  # escapes the index folder
        elif i % 4 == 1:
            path = "http://example.invalid/crop.png"
        elif i % 4 == 2:
            path = f"crops/missing{i}.png"
        else:
            Image.new("RGB", (16, 16), (0, 0, 255)).save(data / "crops" / f"ok{i}.png")
            path = f"crops/ok{i}.png"
        lines.append(f'{path},"<script>alert({i})</script>&<b>"')
    (data / "index.csv").write_text("\n".join(lines) + "\n")
    ingest(data / "x.npy", index=data / "index.csv", store=tmp_path / "store", name="x")
    spec = write_spec(tmp_path / "job.yaml", tmp_path / "store", descriptors=["x"], preprocess={},
                      methods=[{"method": "kmeans", "n_clusters": 2}], report={"crops_per_cluster": 30})
    res = run_job(spec, client=client, echo=lambda s: None)
    page = (res.path / "report" / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(" in page
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["report"]["placeholders"] == {"outside_root": 15, "url": 15, "missing": 15}
    assert manifest["report"]["images_shown"] == 15
    assert manifest["status"] == "complete"
