"""``ivc demo`` end to end, as the README's first command runs it (at a small size)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from storage import DescriptorStore
from storage.synthetic import DESCRIPTOR_DIMS

from ..storage.conftest import tree_digest


def run_ivc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jobs", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_demo_runs_the_study(tmp_path):
    import csv
    import json

    from sklearn.metrics import adjusted_rand_score

    out = tmp_path / "demo"
    proc = run_ivc("demo", "--out", out, "--rows", 700)
    assert proc.returncode == 0, proc.stderr
    assert "| color | 50 | kmeans |" in proc.stdout and "report/index.html" in proc.stdout
    run = (out / "runs" / "latest").resolve()
    metrics = {r["id"]: r for r in json.loads((run / "metrics.json").read_text())["results"]}
    assert metrics["color__kmeans"]["interpretation"] == "by color"
    assert metrics["type__kmeans"]["interpretation"] == "by type"
    assert metrics["generic__kmeans"]["interpretation"] == "no"
    truth = [row["color"] for row in csv.DictReader(open(out / "data" / "index.csv"))]
    labels = [int(row["label"]) for row in csv.DictReader(open(run / "labels" / "color__kmeans.csv"))]
    assert adjusted_rand_score(truth, labels) >= 0.8
    assert (run / "report" / "index.html").is_file()
    # the spec it leaves repeats the study
    again = run_ivc("run", out / "job.yaml")
    assert again.returncode == 0, again.stderr
    assert (out / "runs" / "latest").resolve() != run


def test_demo_fills_the_store_and_is_idempotent(tmp_path):
    out = tmp_path / "demo"
    proc = run_ivc("demo", "--out", out, "--rows", 400, "--no-run")
    assert proc.returncode == 0, proc.stderr
    assert "ingested batch 'synthetic-seed0-n400' into 'color'" in proc.stdout
    store = DescriptorStore(out / "store")
    assert store.names() == sorted(DESCRIPTOR_DIMS)
    for name, dims in DESCRIPTOR_DIMS.items():
        s = store[name]
        assert s.shape == (400, dims)
        np.testing.assert_array_equal(s.vectors().compute(), np.load(out / "data" / f"{name}.npy"))
        frame = s.read_index(rows=[0, 399])
        assert set(frame.columns) >= {"image", "color", "type", "camera"}
        assert (out / "data" / frame["image"][0]).is_file()
    before = tree_digest(out / "store")
    again = run_ivc("demo", "--out", out, "--rows", 400, "--no-run")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert tree_digest(out / "store") == before


def test_demo_refuses_a_store_of_other_data(tmp_path):
    out = tmp_path / "demo"
    assert run_ivc("demo", "--out", out, "--rows", 150, "--no-run").returncode == 0
    proc = run_ivc("demo", "--out", out, "--rows", 200, "--no-run")
    assert proc.returncode == 2
    assert "choose a new --out" in proc.stderr and proc.stderr.count("\n") == 1
