"""Bad input: exit status 2, one line naming the file (and row or key), store unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from jobs.cli import main
from storage import DescriptorStore, ingest

from .conftest import tree_digest, write_index

N_STORED = 50  # rows already in the store; with 32-row chunks its last chunk is partial


@pytest.fixture
def store(tmp_path, rng):
    """A store holding one batch, whose last chunk a new batch would rewrite."""
    X = rng.standard_normal((N_STORED, 8)).astype(np.float32)
    np.save(tmp_path / "base.npy", X)
    write_index(tmp_path / "base.csv", N_STORED, "base", color=["red"] * N_STORED)
    ingest(tmp_path / "base.npy", index=tmp_path / "base.csv", store=tmp_path / "st", name="color", chunk_rows=32)
    return tmp_path / "st"


def _good(rng, n=100, d=8):
    return rng.standard_normal((n, d)).astype(np.float32)


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.err


def _npy_with_nan_late(path, rng):
    X = _good(rng, 200)
    X[150, 2] = np.nan  # found after several blocks were already written
    np.save(path, X)
    return "row 150, dim 2"


def _npy_with_inf_early(path, rng):
    X = _good(rng)
    X[0, 7] = np.inf
    np.save(path, X)
    return "row 0, dim 7"


def _float64_overflowing_float32(path, rng):
    X = _good(rng).astype(np.float64)
    X[99, 0] = 1e300
    np.save(path, X)
    return "row 99, dim 0"


def _wrong_dims(path, rng):
    np.save(path, _good(rng, d=9))
    return "9 dims"


def _one_dimensional(path, rng):
    np.save(path, np.zeros(100, np.float32))
    return "2-D"


def _truncated_npy(path, rng):
    np.save(path, _good(rng))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    return "truncated"


def _garbage_npy(path, rng):
    path.write_bytes(b"this is not a numpy file at all" * 10)
    return "unreadable"


def _truncated_npz(path, rng):
    np.savez(path, X=_good(rng))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "unreadable"


def _empty_npy(path, rng):
    path.write_bytes(b"")
    return "empty"


def _zero_rows(path, rng):
    np.save(path, np.zeros((0, 8), np.float32))
    return "no rows"


def _strings_npy(path, rng):
    np.save(path, np.array([["a"] * 8] * 100))
    return "not numeric"


def _bool_npy(path, rng):
    np.save(path, np.ones((100, 8), bool))
    return "not numeric"


def _object_npy(path, rng):
    np.save(path, np.array([[object()] * 8] * 100, dtype=object), allow_pickle=True)
    return "not numeric"


def _csv_with_text(path, rng):
    X = _good(rng)
    lines = [",".join(f"{v:.6g}" for v in row) for row in X]
    lines[60] = lines[60].split(",", 1)[0] + ",abc," + lines[60].split(",", 2)[2]
    path.write_text("\n".join(lines) + "\n")
    return "row 60 (line 61), column '1': 'abc' is not a number"


def _csv_with_empty_cell(path, rng):
    X = _good(rng)
    lines = [",".join(f"{v:.6g}" for v in row) for row in X]
    lines[42] = "," + lines[42].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    return "row 42 (line 43), dim 0"


def _csv_ragged(path, rng):
    X = _good(rng)
    lines = [",".join(f"{v:.6g}" for v in row) for row in X]
    lines[70] += ",1,2"
    path.write_text("\n".join(lines) + "\n")
    return "expected 8"


DESCRIPTOR_CASES = {
    "nan-late.npy": _npy_with_nan_late,
    "inf-early.npy": _npy_with_inf_early,
    "overflow.npy": _float64_overflowing_float32,
    "wrong-dims.npy": _wrong_dims,
    "one-dim.npy": _one_dimensional,
    "truncated.npy": _truncated_npy,
    "garbage.npy": _garbage_npy,
    "truncated.npz": _truncated_npz,
    "empty.npy": _empty_npy,
    "zero-rows.npy": _zero_rows,
    "strings.npy": _strings_npy,
    "bool.npy": _bool_npy,
    "object.npy": _object_npy,
    "text.csv": _csv_with_text,
    "empty-cell.csv": _csv_with_empty_cell,
    "ragged.csv": _csv_ragged,
}


@pytest.mark.parametrize("case", list(DESCRIPTOR_CASES), ids=list(DESCRIPTOR_CASES))
def test_bad_descriptor_file(case, tmp_path, store, rng, capsys):
    path = tmp_path / case.split("-", 1)[-1].replace(".", f"-{case.split('.')[0]}.", 1)
    expect = DESCRIPTOR_CASES[case](path, rng)
    n = 200 if "late" in case else 100
    idx = write_index(tmp_path / "new.csv", n)
    before = tree_digest(store)
    rc, err = run_cli(["ingest", path, "--index", idx, "--store", store, "--name", "color"], capsys)
    assert rc == 2
    assert err.count("\n") == 1, err
    assert str(path) in err and expect in err, err
    assert tree_digest(store) == before


def _index_short(path):
    write_index(path, 99)
    return "has 99 rows; expected one per descriptor row, and desc.npy has 100"


def _index_long(path):
    write_index(path, 101)
    return "has 101 rows"


def _index_no_image(path):
    path.write_text("path,color\n" + "".join(f"x{i}.png,red\n" for i in range(100)))
    return "no 'image' column"


def _index_empty(path):
    path.write_text("")
    return "empty"


def _index_empty_image(path):
    path.write_text("image\n" + "".join(f"x{i}.png\n" if i != 5 else '""\n' for i in range(100)))
    return "row 5"


def _index_bad_column(path):
    path.write_text("image,a/b\n" + "".join(f"x{i}.png,1\n" for i in range(100)))
    return "'a/b'"


INDEX_CASES = {
    "short": _index_short,
    "long": _index_long,
    "no-image": _index_no_image,
    "empty": _index_empty,
    "empty-image": _index_empty_image,
    "bad-column": _index_bad_column,
}


@pytest.mark.parametrize("case", list(INDEX_CASES), ids=list(INDEX_CASES))
def test_bad_index(case, tmp_path, store, rng, capsys):
    vec = tmp_path / "desc.npy"
    np.save(vec, _good(rng))
    idx = tmp_path / f"index-{case}.csv"
    expect = INDEX_CASES[case](idx)
    before = tree_digest(store)
    rc, err = run_cli(["ingest", vec, "--index", idx, "--store", store, "--name", "color"], capsys)
    assert rc == 2
    assert err.count("\n") == 1, err
    assert str(idx) in err and expect in err, err
    assert tree_digest(store) == before


def test_unknown_file_type(tmp_path, store, capsys):
    path = tmp_path / "desc.txt"
    path.write_text("1,2,3\n")
    before = tree_digest(store)
    rc, err = run_cli(["ingest", path, "--index", tmp_path / "base.csv", "--store", store, "--name", "color"], capsys)
    assert rc == 2 and "unknown descriptor file type '.txt'" in err and ".npy" in err
    assert tree_digest(store) == before


def test_missing_file(tmp_path, store, capsys):
    rc, err = run_cli(
        ["ingest", tmp_path / "nope.npy", "--index", tmp_path / "base.csv", "--store", store, "--name", "color"], capsys
    )
    assert rc == 2 and "nope.npy: no such file" in err


def test_npz_with_several_arrays_needs_a_key(tmp_path, store, rng, capsys):
    path = tmp_path / "two.npz"
    np.savez(path, a=_good(rng), b=_good(rng))
    idx = write_index(tmp_path / "i.csv", 100)
    before = tree_digest(store)
    rc, err = run_cli(["ingest", path, "--index", idx, "--store", store, "--name", "color"], capsys)
    assert rc == 2 and "holds 2 arrays ['a', 'b']" in err
    assert tree_digest(store) == before
    rc, _ = run_cli(["ingest", path, "--index", idx, "--store", store, "--name", "color", "--key", "b"], capsys)
    assert rc == 0 and DescriptorStore(store)["color"].n_rows == N_STORED + 100


def test_failed_first_ingest_leaves_no_store(tmp_path, rng, capsys):
    X = _good(rng, 300)
    X[299, 0] = np.nan
    np.save(tmp_path / "d.npy", X)
    idx = write_index(tmp_path / "i.csv", 300)
    rc, err = run_cli(["ingest", tmp_path / "d.npy", "--index", idx, "--store", tmp_path / "new", "--name", "x",
                       "--chunk-mib", "0.001"], capsys)
    assert rc == 2 and "row 299" in err
    assert not (tmp_path / "new").exists()


def test_bad_input_through_the_installed_command(tmp_path, store, rng):
    vec = tmp_path / "desc.npy"
    np.save(vec, _good(rng, d=3))
    before = tree_digest(store)
    proc = subprocess.run(
        [sys.executable, "-m", "jobs", "ingest", str(vec), "--index", str(tmp_path / "base.csv"),
         "--store", str(store), "--name", "color"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "desc.npy: rows have 3 dims" in proc.stderr
    assert tree_digest(store) == before


def test_interrupted_ingest_is_undone(tmp_path, store, rng):
    """A process killed mid-ingest leaves a journal; the store reads as before and recovery restores it."""
    before = tree_digest(store)
    X = _good(rng, 300)
    np.save(tmp_path / "d.npy", X)
    write_index(tmp_path / "i.csv", 300)
    script = textwrap.dedent(
        f"""
        import os
        import storage._ingest as ing
        calls = []
        real = ing._check_finite
        def dying(*a):
            calls.append(1)
            if len(calls) == 4:  # three blocks already written, tail chunk rewritten
                os._exit(9)
            return real(*a)
        ing._check_finite = dying
        ing.ingest({str(tmp_path / 'd.npy')!r}, index={str(tmp_path / 'i.csv')!r}, store={str(store)!r},
                   name="color")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert tree_digest(store) != before  # the crash left partial writes and a journal
    s = DescriptorStore(store)["color"]
    assert s.n_rows == N_STORED and s.vectors().shape == (N_STORED, 8)  # readers see committed rows only
    assert DescriptorStore(store).recover() == ["color"]
    assert tree_digest(store) == before


def test_interrupted_ingest_is_undone_by_the_next_ingest(tmp_path, store, rng):
    X = _good(rng, 300)
    np.save(tmp_path / "d.npy", X)
    write_index(tmp_path / "i.csv", 300)
    script = textwrap.dedent(
        f"""
        import os
        import storage._ingest as ing
        real = ing._resize
        def dying(arrays, n):
            real(arrays, n)
            os._exit(9)
        ing._resize = dying
        ing.ingest({str(tmp_path / 'd.npy')!r}, index={str(tmp_path / 'i.csv')!r}, store={str(store)!r},
                   name="color", batch_id="b2")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    res = ingest(tmp_path / "d.npy", index=tmp_path / "i.csv", store=store, name="color", batch_id="b2")
    assert res.status == "ingested" and (res.batch.start, res.batch.stop) == (N_STORED, N_STORED + 300)
    got = DescriptorStore(store)["color"].vectors().compute(scheduler="sync")
    np.testing.assert_array_equal(got[N_STORED:], X)
    assert not (store / ".ivc-journal").exists()


def test_zip_member_truncated_inside(tmp_path, store, rng, capsys):
    # A well-formed zip whose member holds fewer rows than its header promises.
    X = _good(rng)
    import io

    buf = io.BytesIO()
    np.save(buf, X)
    data = buf.getvalue()[:-200]
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:
        z.writestr("X.npy", data)
    idx = write_index(tmp_path / "i.csv", 100)
    before = tree_digest(store)
    rc, err = run_cli(["ingest", tmp_path / "short.npz", "--index", idx, "--store", store, "--name", "color"], capsys)
    assert rc == 2 and "short.npz: array 'X': truncated" in err
    assert tree_digest(store) == before
