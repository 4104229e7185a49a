"""Session-wide fixtures: one real Dask LocalCluster shared by every test that needs one."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cluster():
    """A 2-worker, 1-thread-per-worker LocalCluster of real processes on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        memory_limit="2GiB",
        silence_logs=40,
    ) as lc:
        yield lc


@pytest.fixture
def client(cluster):
    """A client of the shared LocalCluster; made the default scheduler while the test runs."""
    from distributed import Client

    with Client(cluster, set_as_default=True) as c:
        yield c
