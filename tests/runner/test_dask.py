"""The dask executor gives the same artifact hashes as the local one."""

from __future__ import annotations

import pandas as pd
import pytest

from conveyor.pipeline import pipeline, step
from conveyor.runner import LocalExecutor, Runner
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import StepStatus, open_metadata_store
from tests.conftest import require_module

distributed = require_module("distributed", "the dask extra (conveyor[dask])")


@step(outputs=("frame", "info"))
def make(n=50):
    frame = pd.DataFrame({"x": range(n), "y": [i % 3 for i in range(n)]})
    return frame, {"n": n}


@step
def fit(frame):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=200).fit(frame[["x"]], frame["y"])


@step
def score(fit, frame, ctx):
    accuracy = float(fit.score(frame[["x"]], frame["y"]))
    ctx.log_metrics({"accuracy": accuracy})
    ctx.metadata.append_event("scored", "test", details={"accuracy": accuracy})
    return {"accuracy": accuracy}


@pytest.mark.slow
def test_same_pipeline_same_hashes_on_local_and_dask(tmp_path):
    from conveyor.runner.dask import DaskExecutor

    url, folder = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    metadata, artifacts = open_metadata_store(url), open_artifact_store(folder)
    p = pipeline(make, fit, score)
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        local = Runner(metadata, artifacts, executor).run(p, use_cache=False)
    with DaskExecutor(folder, url, workers=2) as executor:
        remote = Runner(metadata, artifacts, executor).run(p, use_cache=False)

    assert local.ok and remote.ok, (local.failures, remote.failures)
    assert remote.outputs == local.outputs
    assert {r.executor for r in metadata.list_runs()} == {"local", "dask"}
    assert metadata.get_run(remote.run_id).metrics == metadata.get_run(local.run_id).metrics
    assert len(metadata.list_events()) == 2  # the step reached the store from the worker

    with DaskExecutor(folder, url, workers=1) as executor:
        cached = Runner(metadata, artifacts, executor).run(p)
    assert set(cached.steps.values()) == {StepStatus.CACHED}
    metadata.close()


def test_dask_refuses_an_in_memory_artifact_store():
    from conveyor.runner.dask import DaskExecutor

    with pytest.raises(ValueError, match="not memory://"):
        DaskExecutor("memory://", "sqlite://")
