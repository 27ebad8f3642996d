"""The runs pages over real stores (SQLite + a local artifact folder) filled through the same
store methods the runner calls: the list, a run (DAG, live fragment, metrics, trials,
validation, errors, artifacts, report) and compare."""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conveyor.contracts import DatasetVersion
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import open_metadata_store
from conveyor.store.metadata.records import ArtifactRef, RunStatus
from conveyor.ui.app import UiState, create_app
from conveyor.ui.svg import DagEdge, DagNode, dag_svg, dataflow_edges

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from fastapi import FastAPI

    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import SqlMetadataStore

LOCAL = "http://127.0.0.1"  # --no-auth answers loopback names only
STEPS = ("ingest", "validate", "train", "report")
FLOW = {  # step -> (reads, writes)
    "ingest": ((), ("dataset", "raw")),
    "validate": (("raw",), ("clean", "validation_report")),
    "train": (("clean",), ("model_info",)),
    "report": (("clean", "model_info"), ("report_html",)),
}
REPORT = b"<!doctype html><html><head><style>h1{color:red}</style></head><h1>Report</h1></html>"


@dataclass
class Stores:
    """A project's two stores, and the app over them."""

    metadata: SqlMetadataStore
    artifacts: AbstractArtifactStore

    def app(self, *, auth: bool = False) -> FastAPI:
        state = UiState(self.metadata, self.artifacts, "demo", auth=auth, secret=b"s" * 32)
        return create_app(state)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'conveyor.db'}")
    yield Stores(metadata, open_artifact_store(str(tmp_path / "artifacts")))
    metadata.close()


def _put(stores: Stores, name: str, obj: Any) -> ArtifactRef:
    stored = stores.artifacts.put(obj)
    return ArtifactRef(name, stored.digest, stored.kind, stored.size)


def _outputs(stores: Stores, step: str, *, f1: float, fingerprint: str) -> list[ArtifactRef]:
    values: dict[str, Any] = {
        "dataset": DatasetVersion(
            fingerprint=fingerprint, source="csv:data.csv", rows=100, columns=3, schema_hash="s"
        ),
        "raw": {"rows": 100, "fingerprint": fingerprint},
        "clean": {"rows": 98},
        "validation_report": {
            "source": "csv:data.csv",
            "passed": True,
            "rows_in": 100,
            "rows_out": 98,
            "columns": 3,
            "schema_hash": "s",
            "dropped": 2,
            "fixed": 0,
            "warnings": 0,
            "failures": [
                {
                    "column": "age",
                    "check": "min >= 0",
                    "severity": "drop",
                    "count": 2,
                    "rows": [4, 17],
                    "values": [-3, -8],
                }
            ],
        },
        "model_info": {"f1": f1},
        "report_html": REPORT,
    }
    return [_put(stores, name, values[name]) for name in FLOW[step][1]]


def make_run(
    stores: Stores,
    *,
    f1: float = 0.8,
    trials: int = 3,
    fail_at: str | None = None,
    stop_after: int | None = None,
    fingerprint: str = "ab" * 32,
    pipeline: str = "train",
) -> str:
    """A run recorded step by step as the runner records one; ``stop_after`` leaves it running
    after that many steps, ``fail_at`` fails that step (and skips the rest)."""
    m = stores.metadata
    params = {"evaluation.primary": "f1", "training.tuning.trials": trials, "seed": 1}
    run_id, ids = m.create_run(
        pipeline, STEPS, executor="local", params=params, config_hash="c" * 64
    )
    inputs: dict[str, ArtifactRef] = {}
    for position, step in enumerate(STEPS):
        if stop_after is not None and position >= stop_after:
            if position == stop_after:
                m.start_step(ids[step], cache_key=f"k-{step}-{f1}", key_parts=_parts(step))
            return run_id
        if step == fail_at:
            m.start_step(ids[step], cache_key=f"k-{step}-{f1}", key_parts=_parts(step))
            m.fail_step(ids[step], error="ValueError: no rows left", traceback="Traceback: boom")
            for rest in STEPS[position + 1 :]:
                m.skip_step(ids[rest], reason="an earlier step failed")
            m.finish_run(run_id, RunStatus.FAILED, error=f"step {step} failed")
            return run_id
        _complete(stores, run_id, ids[step], step, inputs, f1=f1, fingerprint=fingerprint)
        if step == "ingest":
            raw = inputs["raw"]
            m.record_dataset(fingerprint, source="csv", n_rows=100, n_columns=3, digest=raw.digest)
        if step == "train":
            m.log_trials(run_id, "train", "logreg", _trials(trials))
    m.log_metrics(
        run_id,
        {"test.f1": f1, "test.log_loss": 1 - f1, "baseline.f1": 0.5, "baseline.log_loss": 0.9},
    )
    m.finish_run(run_id, RunStatus.SUCCEEDED)
    return run_id


def _parts(step: str) -> dict[str, Any]:
    reads, writes = FLOW[step]
    return {"datasets": {r: r for r in reads}, "outputs": list(writes)}


def _complete(
    stores: Stores,
    run_id: str,
    step_id: int,
    step: str,
    inputs: dict[str, ArtifactRef],
    *,
    f1: float,
    fingerprint: str,
) -> None:
    m = stores.metadata
    m.start_step(step_id, cache_key=f"k-{step}-{f1}", key_parts=_parts(step))
    outs = _outputs(stores, step, f1=f1, fingerprint=fingerprint)
    m.record_artifacts(outs)
    now = time.time()
    m.complete_step(
        step_id,
        inputs=[inputs[r] for r in FLOW[step][0]],
        outputs=outs,
        started_at=now - 0.25,
        ended_at=now,
    )
    inputs.update({o.name: o for o in outs})


def _trials(n: int) -> list[dict[str, Any]]:
    return [
        {"number": i, "state": "complete", "value": 0.7 + 0.02 * i, "params": {"C": 10.0**-i}}
        for i in range(n)
    ]


@contextmanager
def client(stores: Stores, *, auth: bool = False) -> Iterator[httpx.Client]:
    """The UI over ``stores`` in a real uvicorn on a free loopback port, and a client for it."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(stores.app(auth=auth), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        with httpx.Client(base_url=f"{LOCAL}:{port}", follow_redirects=False) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def assert_csp_clean(html: str) -> None:
    """No inline script, no inline style, nothing from another origin (the CSP would block it)."""
    assert "style=" not in html
    assert re.search(r"<script(?![^>]*\bsrc=\"/static/)", html) is None
    assert "<style" not in html
    assert re.search(r"(src|href)=\"https?://", html) is None


# -- the list -------------------------------------------------------------------------------


def test_the_list_shows_status_metric_dataset_and_pages(stores: Stores) -> None:
    from conveyor.ui.pages.runs import PAGE_SIZE

    failed = make_run(stores, fail_at="train")
    for i in range(PAGE_SIZE + 2):
        make_run(stores, f1=0.5 + i / 100, fingerprint="cd" * 32)
    with client(stores) as c:
        first = c.get("/runs")
        second = c.get("/runs?page=2")
        only_failed = c.get("/runs?status=failed")
        other_pipeline = c.get("/runs?pipeline=predict")
        bad = c.get("/runs?status=nonsense")
    assert first.status_code == 200
    assert first.text.count('name="run" value=') == PAGE_SIZE
    assert "0.7600" in first.text  # the newest run's test.f1, the primary metric
    assert "cdcdcdcdcdcd" in first.text  # its dataset version, shortened
    assert "older" in first.text and "page=2" in first.text
    assert second.text.count('name="run" value=') == 3  # 28 runs: 25 + 3
    assert failed[:8] in second.text and "s-failed" in second.text
    assert only_failed.text.count('name="run" value=') == 1 and failed in only_failed.text
    assert "No" in other_pipeline.text and "predict" in other_pipeline.text
    assert bad.status_code == 400 and "status must be one of" in bad.text
    assert_csp_clean(first.text)


def test_an_empty_store_says_how_to_start(stores: Stores) -> None:
    with client(stores) as c:
        page = c.get("/runs")
    assert page.status_code == 200 and "conveyor run" in page.text


# -- one run --------------------------------------------------------------------------------


def test_a_run_page_shows_dag_metrics_trials_validation_and_artifacts(stores: Stores) -> None:
    run_id = make_run(stores, f1=0.81, trials=4)
    with client(stores) as c:
        by_prefix = c.get(f"/runs/{run_id[:10]}")
        page = c.get(f"/runs/{run_id}")
    assert by_prefix.status_code == 307 and by_prefix.headers["location"] == f"/runs/{run_id}"
    html = page.text
    assert page.status_code == 200
    for step in STEPS:  # one box per step, marked for scripts and tests
        assert f'data-step="{step}" data-status="succeeded"' in html
    assert html.count('class="edge') == 4  # raw, clean (x2), model_info
    assert "edge indirect" in html  # validate -> report is also reached through train
    assert "0.8100" in html and "(chosen model)" in html  # the metric matrix
    assert "logreg" in html and "4 complete" in html and 'class="chart"' in html
    assert "min &gt;= 0" in html and "4 (-3), 17 (-8)" in html  # the validation failures
    assert "/artifacts/" in html and "?name=validation_report" in html
    assert f'src="/runs/{run_id}/report"' in html and "sandbox" in html
    assert "data-refresh" not in html  # a finished run does not poll
    assert_csp_clean(html)


def test_a_failed_step_shows_its_error_and_traceback(stores: Stores) -> None:
    run_id = make_run(stores, fail_at="train")
    make_run(stores)  # a finished run of the same pipeline: where unknown edges come from
    with client(stores) as c:
        html = c.get(f"/runs/{run_id}").text
    assert "Step <code>train</code> failed" in html
    assert "ValueError: no rows left" in html and "Traceback: boom" in html
    assert 'data-step="report" data-status="skipped"' in html
    assert html.count('class="edge') == 4  # skipped steps still drawn with their dataflow


def test_a_running_run_is_followed_by_its_live_fragment(stores: Stores) -> None:
    run_id = make_run(stores, stop_after=2)  # ingest, validate done; train started
    with client(stores) as c:
        page = c.get(f"/runs/{run_id}")
        live = c.get(f"/runs/{run_id}/live")
        run_ids = stores.metadata.get_run(run_id)
        train = next(s for s in run_ids.steps if s.name == "train")
        stores.metadata.complete_step(train.id, inputs=[], outputs=[])
        later = c.get(f"/runs/{run_id}/live")
        stores.metadata.finish_run(run_id, RunStatus.SUCCEEDED)
        done = c.get(f"/runs/{run_id}/live")
        svg = c.get(f"/runs/{run_id}/dag")
    assert f'data-refresh="/runs/{run_id}/live"' in page.text
    assert live.headers["x-run-status"] == "running"
    assert 'data-step="train" data-status="running"' in live.text
    assert 'data-step="report" data-status="pending"' in live.text
    # train (started) reads `clean` per its cache key; report's inputs are unknown until it starts
    assert live.text.count('class="edge') == 2
    assert "<html" not in live.text  # a fragment, not a page
    assert 'data-step="train" data-status="succeeded"' in later.text
    assert done.headers["x-run-status"] == "succeeded"
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<svg")


def test_an_unknown_run_is_a_404_naming_it(stores: Stores) -> None:
    with client(stores) as c:
        page = c.get("/runs/feedbeef")
    assert page.status_code == 404 and "feedbeef" in page.text


# -- artifacts and the report ---------------------------------------------------------------


def test_an_artifact_downloads_with_its_name_and_type(stores: Stores) -> None:
    run_id = make_run(stores)
    report = next(
        o
        for s in stores.metadata.get_run(run_id).steps
        for o in s.outputs
        if o.name == "validation_report"
    )
    with client(stores) as c:
        got = c.get(f"/artifacts/{report.digest}?name=validation_report")
        not_hex = c.get("/artifacts/not-a-digest")
        unknown = c.get(f"/artifacts/{'0' * 64}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.headers["content-disposition"] == 'attachment; filename="validation_report.json"'
    assert got.json()["rows_out"] == 98
    assert not_hex.status_code == 404 and "64 hex digits" in not_hex.text
    assert unknown.status_code == 404


def test_artifacts_and_reports_need_a_signed_in_reader(stores: Stores) -> None:
    run_id = make_run(stores)
    with client(stores, auth=True) as c:
        artifact = c.get(f"/artifacts/{'a' * 64}")
        report = c.get(f"/runs/{run_id}/report")
    for response in (artifact, report):
        assert response.status_code == 303 and response.headers["location"].startswith("/signin")


def test_the_report_is_served_as_html(stores: Stores) -> None:
    run_id = make_run(stores)
    with client(stores) as c:
        got = c.get(f"/runs/{run_id}/report")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
    assert got.content == REPORT


def test_the_report_has_its_own_policy_allowing_inline_styles_only(stores: Stores) -> None:
    run_id = make_run(stores)
    with client(stores) as c:
        policy = c.get(f"/runs/{run_id}/report").headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in policy and "script-src" not in policy
    assert "default-src 'none'" in policy


# -- compare --------------------------------------------------------------------------------


def test_compare_shows_differing_params_the_best_metric_and_a_chart(stores: Stores) -> None:
    a = make_run(stores, f1=0.70, trials=3)
    b = make_run(stores, f1=0.90, trials=5)
    with client(stores) as c:
        page = c.get(f"/compare?run={a[:8]}&run={b}")
        one = c.get(f"/compare?run={a}")
        unknown = c.get(f"/compare?run={a}&run=0000dead")
    html = page.text
    row = re.search(
        r'<tr class="differs"><th scope="row"><code>training\.tuning\.trials</code></th>(.*?)</tr>',
        html,
    )
    assert row is not None and re.findall(r"<code>(\d)</code>", row.group(1)) == ["3", "5"]
    f1_row = re.search(r"<code>test\.f1</code></th>(.*?)</tr>", html, re.S)
    assert f1_row is not None and f1_row.group(1).index("best") > f1_row.group(1).index("0.7000")
    loss_row = re.search(r"<code>test\.log_loss</code></th>(.*?)</tr>", html, re.S)
    assert loss_row is not None and "best" in loss_row.group(1).split("</td>")[1]  # lower wins
    assert 'class="chart"' in html and "test.f1" in html
    assert "same in every run" in html  # the seed, hidden under a summary
    assert_csp_clean(html)
    assert one.status_code == 200 and "at least two runs" in one.text
    assert unknown.status_code == 404 and "0000dead" in unknown.text


# -- the drawing ----------------------------------------------------------------------------


def test_dataflow_edges_join_each_input_to_its_producer() -> None:
    edges = dataflow_edges(
        ["a", "b", "c"], {"a": ["x"], "b": ["y"]}, {"b": ["x"], "c": ["x", "y", "outside"]}
    )
    assert {(e.source, e.target, e.names) for e in edges} == {
        ("a", "b", ("x",)),
        ("a", "c", ("x",)),
        ("b", "c", ("y",)),
    }


def test_the_dag_escapes_names_and_places_children_below_parents() -> None:
    nodes = [DagNode("<a>", "succeeded", "1 s"), DagNode("b", "running", "for 2 s")]
    svg = str(dag_svg(nodes, [DagEdge("<a>", "b", ("x",))]))
    assert "&lt;a&gt;" in svg and "<a>" not in svg
    ys = [float(y) for y in re.findall(r"translate\([\d.]+,([\d.]+)\)", svg)]
    assert ys[0] < ys[1]
    assert "style=" not in svg


# -- speed ----------------------------------------------------------------------------------


def test_the_pages_answer_quickly(stores: Stores) -> None:
    run_ids = [make_run(stores, f1=0.6 + i / 100) for i in range(30)]
    timings = {}
    with client(stores) as http:
        for path in ("/runs", f"/runs/{run_ids[0]}", f"/compare?run={run_ids[0]}&run={run_ids[1]}"):
            http.get(path)  # warm
            started = time.perf_counter()
            got = http.get(path)
            timings[path] = time.perf_counter() - started
            assert got.status_code == 200, (path, got.text[:500])
            assert "default-src 'self'" in got.headers["content-security-policy"]
    assert max(timings.values()) < 2.0, timings  # generous: CI machines are slow
