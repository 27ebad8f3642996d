"""Runner fixtures: stores in memory for speed, on disk where processes must share them."""

from __future__ import annotations

import pytest

from conveyor.runner import LocalExecutor, Runner
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import open_metadata_store


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
