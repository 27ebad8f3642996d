"""Runner fixtures: stores in memory for speed, on disk where processes must share them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.runner import LocalExecutor, Runner
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests._dask_cluster import DaskCluster


@pytest.fixture
def stores():
    metadata = open_metadata_store("sqlite://")
    artifacts = open_artifact_store("memory://")
    yield metadata, artifacts
    metadata.close()


@pytest.fixture
def runner(stores):
    metadata, artifacts = stores
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        yield Runner(metadata, artifacts, executor)


@pytest.fixture
def dask_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaskCluster]:
    """A Dask scheduler and two single-threaded workers, each its own OS process on loopback
    (see tests/_dask_cluster.py); stopped after the test.

    Parametrise it indirectly to change the cluster: ``{"workers": 3, "nanny": True, "env":
    {...}}`` are passed to :func:`tests._dask_cluster.dask_cluster`. The workers inherit this
    process's environment as it is when the fixture starts: list store fixtures that set
    credentials (``s3_bucket_uri`` sets ``AWS_*``) before this one in the test's arguments.
    """
    from tests._dask_cluster import dask_cluster as start

    options = dict(getattr(request, "param", None) or {})
    workers = options.pop("workers", 2)
    with start(workers, directory=tmp_path_factory.mktemp("dask"), **options) as cluster:
        yield cluster
