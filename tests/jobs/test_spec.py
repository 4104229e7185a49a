"""Job spec validation: every bad spec is refused before anything runs, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.cli import main
from jobs.spec import SpecError, load_spec, spec_from_mapping

GOOD = {"store": "store", "descriptors": ["color"], "methods": [{"method": "kmeans", "n_clusters": 8}]}

BAD = {
    "unknown-top-key": ({**GOOD, "colour": 1}, "key 'colour': unknown key; expected one of: cluster, descriptors"),
    "missing-methods": ({"store": "s", "descriptors": ["c"]}, "key 'methods': missing"),
    "empty-descriptors": ({**GOOD, "descriptors": []}, "key 'descriptors'"),
    "unknown-method": ({**GOOD, "methods": [{"method": "hdbscan"}]},
                       "key 'methods[0]': unknown method 'hdbscan'; expected one of: "),
    "unknown-param": ({**GOOD, "methods": [{"method": "kmeans", "k": 3}]},
                      "key 'methods[0]': method 'kmeans' has no parameter 'k'; valid parameters:"),
    "bad-value": ({**GOOD, "methods": [{"method": "kmeans", "n_clusters": 0}]}, "'n_clusters' parameter of KMeans"),
    "duplicate-id": ({**GOOD, "methods": [{"method": "kmeans"}, {"method": "kmeans", "n_clusters": 3}]},
                     "key 'methods[1]': result id 'kmeans' repeats"),
    "bad-pca": ({**GOOD, "preprocess": {"pca": 0}}, "key 'preprocess.pca': 0 is not allowed"),
    "unknown-preprocess": ({**GOOD, "preprocess": {"whiten": True}}, "key 'preprocess.whiten': unknown key"),
    "bad-memory": ({**GOOD, "cluster": {"memory_limit": "lots"}}, "key 'cluster.memory_limit'"),
    "bad-crops": ({**GOOD, "report": {"crops_per_cluster": -1}}, "key 'report.crops_per_cluster'"),
    "not-a-mapping": ([1, 2], "expected a YAML mapping"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_spec_is_refused_naming_the_key(case):
    data, expect = BAD[case]
    with pytest.raises(SpecError) as e:
        spec_from_mapping(data, base=Path("/tmp"), source="job.yaml")
    assert str(e.value).startswith("job.yaml: ") and expect in str(e.value)


def test_good_spec_resolves_paths_and_ids(tmp_path):
    spec = spec_from_mapping(
        {**GOOD, "descriptors": ["color", "type"],
         "methods": [{"method": "kmeans"}, {"method": "minibatch_kmeans", "id": "mb"}]},
        base=tmp_path, source="job.yaml",
    )
    assert spec.store == str(tmp_path / "store") and spec.runs == tmp_path / "runs"
    assert spec.result_ids() == ["color__kmeans", "color__mb", "type__kmeans", "type__mb"]


def test_cli_exit_2_for_a_bad_spec(tmp_path, capsys):
    p = tmp_path / "job.yaml"
    p.write_text("store: s\ndescriptors: [c]\nmethods:\n  - {method: kmeans, n_clusterz: 3}\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "job.yaml: key 'methods[0]'" in err and "n_clusterz" in err


def test_invalid_yaml_and_missing_file(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("store: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML at line"):
        load_spec(p)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_progress_bar_on_a_terminal(monkeypatch, capsys):
    import sys

    from jobs.cli import _progress_echo

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    echo = _progress_echo()
    echo("[6/24] color__gmm: 7 clusters")
    echo("plain line")
    out = capsys.readouterr().out.splitlines()
    assert out == ["[######..................] 6/24 color__gmm: 7 clusters", "plain line"]
