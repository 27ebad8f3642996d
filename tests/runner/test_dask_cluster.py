"""conveyor on a real Dask cluster: ``dask scheduler`` and ``dask worker`` as separate processes,
PostgreSQL metadata and S3 (moto) artifacts shared by the CLI and the workers.

- the visa train line runs there and trains the same models as the local executor;
- a worker SIGKILLed in the middle of a step costs a retry, not the run: Dask runs the step
  again on the surviving worker, every output is the same as without the kill;
- a step that kills every worker it runs on fails its run with a record that says so;
- a scheduler address nobody listens on fails ``conveyor run`` in seconds, naming the address;
- a worker imports the project's own modules from the client's code folders.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conveyor.errors import ConfigError
from conveyor.pipeline import pipeline, step
from conveyor.runner import Runner
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import RunStatus, StepStatus, open_metadata_store
from tests._dask_cluster import dask_cluster as start_cluster
from tests._processes import die_with_parent
from tests.conftest import require_module
from tests.e2e.conftest import CONVEYOR, cli_env, conveyor

if TYPE_CHECKING:
    from pathlib import Path

    from tests._dask_cluster import DaskCluster
    from tests.conftest import S3Location

require_module("distributed", "the dask extra (conveyor[dask])")

SLOW_SECONDS = 4.0  # how long the `fit` step sleeps before fitting: the window for the kill
RUN_TIMEOUT = 300.0

STEPS_MOD = '''\
"""A project's own pipeline: its code lives in the project folder, not in an installed package."""

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.pipeline import Pipeline, Step


def make(*, rows):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 3))
    label = (x @ [1.0, -2.0, 0.5] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": label})


def fit(frame, *, markers, seconds):
    """Say which process runs this attempt, wait (the test kills it meanwhile), then fit."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    Path(markers, f"{time.time():.6f}.{os.getpid()}").write_text("started", encoding="utf-8")
    time.sleep(seconds)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return model.fit(frame[["a", "b", "c"]], frame["label"])


def score(fit, frame, ctx):
    accuracy = float(fit.score(frame[["a", "b", "c"]], frame["label"]))
    ctx.log_metrics({"accuracy": accuracy})
    return {"accuracy": accuracy, "rows": len(frame)}


def build(config):
    return Pipeline(
        [
            Step(make, "make", inputs={}, outputs=("frame",), params={"rows": 2000}),
            Step(fit, "fit", inputs={"frame": "frame"}, outputs=("model",),
                 params={"markers": MARKERS, "seconds": SECONDS}),
            Step(score, "score", inputs={"fit": "model", "frame": "frame"}, outputs=("scores",)),
        ]
    )
'''


# --- helpers ---------------------------------------------------------------------------------


def _set_stores(project: Path, metadata_url: str, s3: S3Location, *, address: str | None) -> None:
    """Point the project at the shared stores and (with ``address``) at the cluster.

    The S3 endpoint is written out; the credentials come from the environment (``AWS_*``), as
    on a real cluster: the s3_bucket_uri fixture sets them, the workers inherit them.
    """
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["store"] = {
        "metadata": metadata_url,
        "artifacts": s3.uri,
        "storage_options": {"endpoint_url": s3.storage_options["endpoint_url"]},
    }
    config["executor"] = {"type": "dask", "address": address} if address else {"type": "local"}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _s3_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def _run_json(project: Path, *args: str) -> dict[str, Any]:
    proc = conveyor("run", *args, "-p", project, "--json", env=_s3_env(), timeout=RUN_TIMEOUT)
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def _digests(summary: dict[str, Any]) -> dict[str, str]:
    """Every output of a run: dataset name -> SHA-256."""
    return {name: d for s in summary["steps"] for name, d in s["outputs"].items()}


def _slow_project(directory: Path, metadata_url: str, s3: S3Location, address: str) -> Path:
    project = directory / "proj"
    markers = directory / "markers"
    project.mkdir(parents=True)
    markers.mkdir()
    module = STEPS_MOD + f"\nMARKERS = {str(markers)!r}\nSECONDS = {SLOW_SECONDS!r}\n"
    (project / "slow_steps.py").write_text(module, encoding="utf-8")
    (project / "conveyor.yaml").write_text(
        "project: slow\npipelines: {slow: 'slow_steps:build'}\n", encoding="utf-8"
    )
    _set_stores(project, metadata_url, s3, address=address)
    return project


def _attempts(markers: Path) -> list[int]:
    """The pids that started the `fit` step, in order."""
    names = sorted(markers.iterdir(), key=lambda p: float(p.name.rsplit(".", 1)[0]))
    return [int(p.name.rsplit(".", 1)[1]) for p in names]


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.service
def test_visa_line_on_an_external_cluster_trains_the_local_model(
    tmp_path: Path, postgres_url: str, s3_bucket_uri: S3Location, dask_cluster: DaskCluster
) -> None:
    from conveyor.cli.init import scaffold
    from conveyor.examples.visa.generate import write_csv
    from tests._visa import shrink_visa_config

    project = tmp_path / "visa"
    scaffold(project, example="visa")
    write_csv(project / "data" / "visa.csv", n_rows=2000)
    shrink_visa_config(project)

    on_local = _run_json(project)  # its own SQLite and folder stores, the local executor
    _set_stores(project, postgres_url, s3_bucket_uri, address=dask_cluster.address)
    on_dask = _run_json(project)  # new stores: nothing comes from the first run's cache

    assert on_local["status"] == "succeeded", on_local
    assert on_dask["status"] == "succeeded", on_dask
    assert on_dask["executor"] == "dask"
    assert {s["status"] for s in on_dask["steps"]} == {"succeeded"}
    dask_digests, local_digests = _digests(on_dask), _digests(on_local)
    assert dask_digests["model"] == local_digests["model"]
    # the report names its run; everything else is the same bytes
    differ = {k for k in dask_digests if dask_digests[k] != local_digests[k]}
    assert differ == {"report", "report_html"}, differ
    assert on_dask["metrics"] == on_local["metrics"]
    model_key = f"artifacts/sha256/{dask_digests['model'][:2]}/{dask_digests['model']}"
    s3_bucket_uri.client().head_object(Bucket=s3_bucket_uri.bucket, Key=model_key)


@pytest.mark.slow
@pytest.mark.service
def test_partitioned_line_runs_its_partitions_and_lightgbm_on_the_cluster(
    tmp_path: Path, postgres_url: str, s3_bucket_uri: S3Location, dask_cluster: DaskCluster
) -> None:
    """data.partitioned on the cluster: ingest/validate/split send one task per partition to
    the workers, the Dask LightGBM candidate trains on every row over both workers; the
    dataset is the one the local executor fingerprints."""
    from conveyor.cli.init import scaffold
    from conveyor.examples.visa.generate import generate

    project = tmp_path / "visa"
    scaffold(project, example="visa")
    parts = project / "data" / "parts"
    parts.mkdir()
    frame = generate(6000, seed=5)
    for i in range(6):
        frame.iloc[i * 1000 : (i + 1) * 1000].to_parquet(parts / f"part-{i}.parquet", index=False)
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["data"]["source"] = {"type": "parquet", "path": "data/parts"}
    config["data"].update(partitioned=True, sample_rows=2000)
    config["training"] = {
        "task": "classification",
        "candidates": [
            {
                "name": "lgbm",
                "estimator": "lightgbm.dask.DaskLGBMClassifier",
                "params": {"n_estimators": 30, "verbose": -1},
            }
        ],
    }
    config["evaluation"] = {"primary": "f1", "beat_baseline": False}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    on_local = _run_json(project)
    _set_stores(project, postgres_url, s3_bucket_uri, address=dask_cluster.address)
    on_dask = _run_json(project)
    assert on_local["status"] == "succeeded", on_local
    assert on_dask["status"] == "succeeded", on_dask
    assert _digests(on_dask)["dataset"] == _digests(on_local)["dataset"]
    assert _digests(on_dask)["clean"] == _digests(on_local)["clean"]
    metrics = on_dask["metrics"]
    assert metrics["data.partitions"] == 6
    assert metrics["train.lgbm.rows"] == metrics["split.train_rows"] > 4000
    assert metrics["test.f1"] > 0.7


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.parametrize(
    "dask_cluster", [{"nanny": False}, {"nanny": True}], indirect=True, ids=["bare", "nanny"]
)
def test_a_worker_killed_mid_step_costs_a_retry_not_the_run(
    tmp_path: Path, postgres_url: str, s3_bucket_uri: S3Location, dask_cluster: DaskCluster
) -> None:
    project = _slow_project(tmp_path, postgres_url, s3_bucket_uri, dask_cluster.address)
    markers = tmp_path / "markers"
    err = tmp_path / "run.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [str(CONVEYOR), "run", "slow", "-p", str(project), "--json"],
            env={**cli_env(), **_s3_env()},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=die_with_parent,
        )
        try:
            deadline = time.monotonic() + 60
            while not any(markers.iterdir()):
                assert proc.poll() is None, f"the run ended early:\n{err.read_text()}"
                assert time.monotonic() < deadline, "step `fit` did not start within 60 s"
                time.sleep(0.05)
            [pid] = _attempts(markers)
            killed_at = time.time()
            dask_cluster.kill_worker(dask_cluster.worker_by_pid(pid))
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # reaps it and closes the pipe (after the first: a no-op)
    assert proc.returncode == 0, f"{out}\n{err.read_text()}"
    summary = json.loads(out)
    assert summary["status"] == "succeeded", summary
    assert {s["status"] for s in summary["steps"]} == {"succeeded"}

    # Dask ran `fit` again in another process: the other worker, or (under a nanny) either the
    # other worker or the one the nanny started in place of the killed one
    first, second = _attempts(markers)
    assert first == pid and second != pid
    dask_cluster.wait_for_workers()  # learn the replacement's pid, if any
    assert second in {w.pid for w in dask_cluster.workers if w.alive}
    assert "step 'fit': 1 Dask worker(s) died while running it" in err.read_text()

    # the same outputs as a run nobody disturbed
    again = _run_json(project, "slow", "--no-cache")
    assert again["status"] == "succeeded", again
    assert _digests(again) == _digests(summary)
    assert again["metrics"] == summary["metrics"]
    assert len(_attempts(markers)) == 3

    # what the store says about the retried step: one row, the attempt that produced the outputs
    metadata = open_metadata_store(postgres_url)
    try:
        record = metadata.get_run(summary["run_id"])
    finally:
        metadata.close()
    assert record.status is RunStatus.SUCCEEDED
    [fit] = [s for s in record.steps if s.name == "fit"]
    assert fit.status is StepStatus.SUCCEEDED and fit.error is None
    assert fit.started_at is not None and fit.started_at >= killed_at
    assert [o.name for o in fit.outputs] == ["model"]


# --- every worker dies: the step fails, and its record says why and for how long -------------

CRASH_AFTER = 0.5  # seconds each attempt runs before killing its worker


@step
def doomed(n: int = 3) -> int:
    """Kill the Dask worker running this (never anything else: outside a worker it refuses)."""
    from distributed import get_worker

    get_worker()  # raises ValueError outside a Dask worker
    time.sleep(CRASH_AFTER)
    os.kill(os.getpid(), signal.SIGKILL)
    return n


@pytest.mark.slow
def test_a_step_that_kills_every_worker_fails_saying_so(tmp_path: Path) -> None:
    from conveyor.runner.dask import DaskExecutor

    url, folder = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    metadata, artifacts = open_metadata_store(url), open_artifact_store(folder)
    allowed = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}  # 2 attempts, 2 workers
    with start_cluster(2, directory=tmp_path / "dask", env=allowed) as cluster:
        with DaskExecutor(folder, url, address=cluster.address) as executor:
            result = Runner(metadata, artifacts, executor).run(pipeline(doomed), use_cache=False)
        assert not any(w.alive for w in cluster.workers)

    assert result.status is RunStatus.FAILED
    [record] = metadata.get_run(result.run_id).steps
    metadata.close()
    assert record.status is StepStatus.FAILED
    assert record.error is not None
    assert "every Dask worker that ran step 'doomed' died while running it" in record.error
    assert "2 attempts" in record.error
    last = re.search(r"the last one was (tcp://[\d.]+:\d+)", record.error)
    assert last is not None and last[1] in {w.address for w in cluster.workers}
    # both attempts ran CRASH_AFTER seconds: the record covers them, not an instant
    assert record.duration is not None and record.duration >= 2 * CRASH_AFTER


@step
def sleepy(n: int = 3) -> int:
    time.sleep(SLOW_SECONDS)
    return n


@pytest.mark.slow
def test_a_scheduler_lost_mid_step_fails_the_run_naming_it(tmp_path: Path) -> None:
    from conveyor.runner.dask import DaskExecutor

    url, folder = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    metadata, artifacts = open_metadata_store(url), open_artifact_store(folder)
    with start_cluster(1, directory=tmp_path / "dask") as cluster:
        with DaskExecutor(folder, url, address=cluster.address) as executor:
            runner = Runner(metadata, artifacts, executor)
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(runner.run, pipeline(sleepy), use_cache=False)
                _wait_until_processing(cluster, "sleepy")
                started = time.monotonic()
                cluster.scheduler.kill()
                result = running.result(timeout=60)
                took = time.monotonic() - started

    assert result.status is RunStatus.FAILED
    assert took < SLOW_SECONDS  # noticed when the connection dropped, not when the step ended
    [record] = metadata.get_run(result.run_id).steps
    metadata.close()
    assert record.status is StepStatus.FAILED
    assert record.error is not None
    assert f"the scheduler at {cluster.address} went away" in record.error


def _wait_until_processing(cluster: DaskCluster, name: str, timeout: float = 30) -> None:
    """Until the scheduler has given the task of step ``name`` to a worker."""
    deadline = time.monotonic() + timeout
    while not any(
        str(key).startswith(f"conveyor-{name}-")
        for keys in cluster.client.processing().values()
        for key in keys
    ):
        assert time.monotonic() < deadline, f"step {name} was not processing within {timeout} s"
        time.sleep(0.05)


# --- the scheduler is not there ----------------------------------------------------------------


def _closed_port_address() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_the_executor_names_an_unreachable_scheduler(tmp_path: Path) -> None:
    from conveyor.runner.dask import DaskExecutor

    address = _closed_port_address()
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"no Dask scheduler answered at {address} within 1 s"):
        DaskExecutor(str(tmp_path), "sqlite://", address=address, connect_timeout=1)
    assert time.monotonic() - started < 5


def test_the_executor_refuses_an_address_that_is_not_one(tmp_path: Path) -> None:
    from conveyor.runner.dask import DaskExecutor

    with pytest.raises(ConfigError, match="'nowhere' is not a Dask scheduler address"):
        DaskExecutor(str(tmp_path), "sqlite://", address="nowhere")


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_conveyor_run_fast(tmp_path: Path) -> None:
    address = _closed_port_address()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "slow_steps.py").write_text(
        STEPS_MOD + "\nMARKERS = '.'\nSECONDS = 0\n", encoding="utf-8"
    )
    (project / "conveyor.yaml").write_text(
        "project: nowhere\npipelines: {slow: 'slow_steps:build'}\n"
        f"executor: {{type: dask, address: '{address}'}}\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    proc = conveyor("run", "slow", "-p", project, check=False, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc
    assert f"no Dask scheduler answered at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert took < 25, f"took {took:.1f} s"  # 10 s of retries, plus starting the CLI


# --- the project's own code on the workers -----------------------------------------------------


def test_a_worker_imports_the_project_code_from_the_client_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker does with a task: put the client's code folders on sys.path, then load it.
    Without the folder the step fails with a message naming it, not Dask's "different
    environments" riddle."""
    from distributed.protocol.pickle import dumps

    from conveyor.pipeline import Pipeline, Step
    from conveyor.runner.base import StepTask
    from conveyor.runner.dask import _code_paths, _run_on_worker

    code = tmp_path / "project"
    code.mkdir()
    (code / "h3_project_steps.py").write_text("def seven():\n    return 7\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(code))
    import h3_project_steps  # type: ignore[import-not-found]

    [made] = Pipeline([Step(h3_project_steps.seven, "seven", inputs={}, outputs=("n",))]).steps
    payload = dumps(StepTask(made, "run", {}))  # type: ignore[no-untyped-call]
    assert str(code) in _code_paths()
    assert sys.prefix not in _code_paths()
    monkeypatch.delitem(sys.modules, "h3_project_steps")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(code)])
    stores: tuple[str, str, dict[str, Any]] = (str(tmp_path / "art"), "sqlite://", {})

    failed = _run_on_worker("seven", payload, (), *stores)
    assert failed.error is not None
    assert "cannot load step 'seven'" in failed.error
    assert "No module named 'h3_project_steps'" in failed.error

    done = _run_on_worker("seven", payload, (str(code),), *stores)
    assert done.ok, done.error
    assert [o.name for o in done.outputs] == ["n"]
    assert sys.path[0] == str(code)
