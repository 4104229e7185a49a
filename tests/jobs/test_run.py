"""``ivc run``: the run directory contract, a remote scheduler, and interrupted runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import zarr

import jobs.run as job_run
from jobs.run import run_job
from storage import DescriptorStore

from .conftest import write_spec


def test_run_directory_contract(tmp_path, crop_store, client):
    spec = write_spec(tmp_path / "job.yaml", crop_store,
                      methods=[{"method": "kmeans", "n_clusters": 7}, {"method": "minibatch_kmeans", "n_clusters": 6}])
    res = run_job(spec, client=client, echo=lambda s: None)
    run = res.path
    assert run.parent == tmp_path / "runs" and (tmp_path / "runs" / "latest").resolve() == run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert {i["descriptor"] for i in manifest["inputs"]} == {"color", "type"}
    assert manifest["versions"]["dask"] and manifest["timings"]
    metrics = json.loads((run / "metrics.json").read_text())["results"]
    assert [r["id"] for r in metrics] == ["color__kmeans", "color__minibatch_kmeans", "type__kmeans",
                                         "type__minibatch_kmeans"]
    for r in metrics:
        for key in ("id", "descriptor", "method", "params", "n_rows", "n_clusters", "calinski_harabasz",
                    "davies_bouldin", "silhouette", "sizes", "noise_fraction", "interpretation"):
            assert key in r, key
        assert r["n_rows"] == 600 and sum(r["sizes"].values()) == 600
        rows = list(csv.reader(open(run / "labels" / f"{r['id']}.csv")))
        assert rows[0] == ["row", "label"] and len(rows) == 601
        assert [int(x[0]) for x in rows[1:]] == list(range(600))
        stored = zarr.open_array(str(run / "labels.zarr" / r["id"]), mode="r")[:]
        assert stored.dtype == np.int32
        np.testing.assert_array_equal(stored, [int(x[1]) for x in rows[1:]])
    by_id = {r["id"]: r for r in metrics}
    assert by_id["color__kmeans"]["interpretation"] == "by color"
    assert by_id["type__kmeans"]["interpretation"] == "by type"
    assert (run / "report" / "summary.md").read_text().count("\n") == 6
    assert not list((tmp_path / "runs").glob(".*partial*"))


def test_run_against_a_separately_started_scheduler(tmp_path, crop_store, cluster):
    spec = write_spec(tmp_path / "job.yaml", crop_store, descriptors=["generic"])
    out = tmp_path / "myrun"
    proc = subprocess.run(
        [sys.executable, "-m", "jobs", "run", str(spec), "--scheduler", cluster.scheduler_address, "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"connected to {cluster.scheduler_address}" in proc.stdout
    assert "| generic | 20 | kmeans |" in proc.stdout
    assert json.loads((out / "manifest.json").read_text())["scheduler"] == cluster.scheduler_address
    assert not (tmp_path / "runs").exists()  # --out: no runs folder, no latest


def test_interrupted_run_leaves_no_run_directory(tmp_path, crop_store, client, monkeypatch):
    spec = write_spec(tmp_path / "job.yaml", crop_store)
    first = run_job(spec, client=client, echo=lambda s: None).path
    calls = []
    real = job_run._score

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("stopped by the test")
        return real(*args, **kwargs)

    monkeypatch.setattr(job_run, "_score", failing)
    with pytest.raises(KeyboardInterrupt):
        run_job(spec, client=client, echo=lambda s: None)
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == sorted([first.name, "latest"])  # nothing half-written, latest unchanged
    assert (tmp_path / "runs" / "latest").resolve() == first


def test_missing_descriptor_is_a_spec_error(tmp_path, crop_store, capsys):
    from jobs.cli import main

    spec = write_spec(tmp_path / "job.yaml", crop_store, descriptors=["color", "osnet"])
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "key 'descriptors[1]': 'osnet' is not in the store" in err and "color, generic, reid, type" in err
    assert DescriptorStore(crop_store).names() == ["color", "generic", "reid", "type"]


def test_ivc_report_re_renders_a_run(tmp_path, crop_store, client, capsys):
    from jobs.cli import main

    spec = write_spec(tmp_path / "job.yaml", crop_store, descriptors=["color"])
    run = run_job(spec, client=client, echo=lambda s: None).path
    page = run / "report" / "index.html"
    before = page.read_text()
    page.unlink()
    assert main(["report", str(run)]) == 0
    assert page.read_text() == before
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_performance_report_is_saved(tmp_path, crop_store, client):
    spec = write_spec(tmp_path / "job.yaml", crop_store, descriptors=["color"])
    run = run_job(spec, client=client, echo=lambda s: None, performance_report=True).path
    page = (run / "performance.html").read_text()
    assert "Dask Performance Report" in page
