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


def test_demo_fills_the_store_and_is_idempotent(tmp_path):
    out = tmp_path / "demo"
    proc = run_ivc("demo", "--out", out, "--rows", 400)
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
    again = run_ivc("demo", "--out", out, "--rows", 400)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert tree_digest(out / "store") == before


def test_demo_refuses_a_store_of_other_data(tmp_path):
    out = tmp_path / "demo"
    assert run_ivc("demo", "--out", out, "--rows", 150).returncode == 0
    proc = run_ivc("demo", "--out", out, "--rows", 200)
    assert proc.returncode == 2
    assert "choose a new --out" in proc.stderr and proc.stderr.count("\n") == 1
