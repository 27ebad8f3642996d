"""Running pipelines: records, lineage, cache, failures and interrupts."""

from __future__ import annotations

import pandas as pd
import pytest

from conveyor.errors import MissingInputError
from conveyor.pipeline import Pipeline, Step, pipeline, step
from conveyor.runner import LocalExecutor, RunHooks, Runner
from conveyor.store.metadata import RunStatus, StepStatus

CALLS: list[str] = []


@step(outputs=("frame", "info"))
def make(n=4):
    CALLS.append("make")
    return pd.DataFrame({"x": range(n)}), {"n": n}


@step
def total(frame, info, ctx):
    CALLS.append("total")
    ctx.log_metrics({"sum": float(frame.x.sum())})
    return int(frame.x.sum()) + info["n"]


@step
def explode(total):
    CALLS.append("explode")
    raise RuntimeError(f"cannot handle {total}")


@step
def after(explode):
    CALLS.append("after")
    return 1


@step
def side(info):
    CALLS.append("side")
    return info["n"] * 2


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def test_successful_run_records_steps_outputs_lineage_and_metrics(runner, stores):
    metadata, artifacts = stores
    result = runner.run(pipeline(make, total, name="demo"), params={"alpha": 1})

    assert result.ok
    assert result.steps == {"make": StepStatus.SUCCEEDED, "total": StepStatus.SUCCEEDED}
    assert artifacts.get(result.outputs["total"].digest, "json") == 10
    record = metadata.get_run(result.run_id)
    assert record.status is RunStatus.SUCCEEDED
    assert record.params == {"alpha": 1}
    assert record.metrics == {"sum": 6.0}
    total_step = record.steps[1]
    assert {ref.name for ref in total_step.inputs} == {"frame", "info"}
    assert [ref.name for ref in total_step.outputs] == ["total"]
    assert all(s.duration is not None and s.duration >= 0 for s in record.steps)


def test_second_run_is_served_from_cache_with_the_same_outputs(runner, stores):
    metadata, _ = stores
    first = runner.run(pipeline(make, total))
    CALLS.clear()
    second = runner.run(pipeline(make, total))

    assert CALLS == []
    assert set(second.steps.values()) == {StepStatus.CACHED}
    assert second.outputs == first.outputs
    assert metadata.get_run(second.run_id).metrics == {"sum": 6.0}  # copied from the cache


def test_changed_param_reruns_that_step_and_its_dependants_only(runner):
    runner.run(pipeline(make, total, side))
    CALLS.clear()
    result = runner.run(pipeline(make.with_params(n=5), total, side))
    assert sorted(CALLS) == ["make", "side", "total"]
    assert result.steps["make"] is StepStatus.SUCCEEDED


def test_unchanged_output_keeps_downstream_cached(runner):
    @step(outputs=("frame", "info"))
    def make(n=4, unused="a"):
        return pd.DataFrame({"x": range(n)}), {"n": n}

    runner.run(pipeline(make, total))
    CALLS.clear()
    result = runner.run(pipeline(make.with_params(unused="b"), total))
    assert result.steps["make"] is StepStatus.SUCCEEDED
    assert result.steps["total"] is StepStatus.CACHED  # same input bytes, same key
    assert CALLS == []


def test_no_cache_reruns_everything(runner):
    runner.run(pipeline(make, total))
    CALLS.clear()
    result = runner.run(pipeline(make, total), use_cache=False)
    assert CALLS == ["make", "total"]
    assert set(result.steps.values()) == {StepStatus.SUCCEEDED}


def test_failure_skips_downstream_but_not_independent_steps(runner, stores):
    metadata, _ = stores
    result = runner.run(pipeline(make, total, explode, after, side))

    assert not result.ok
    assert result.status is RunStatus.FAILED
    assert result.steps["explode"] is StepStatus.FAILED
    assert result.steps["after"] is StepStatus.SKIPPED
    assert result.steps["side"] is StepStatus.SUCCEEDED
    assert "after" not in CALLS
    assert result.failures == {"explode": "RuntimeError: cannot handle 10"}
    record = metadata.get_run(result.run_id)
    failed = next(s for s in record.steps if s.name == "explode")
    assert "Traceback" in (failed.traceback or "")
    assert "raise RuntimeError" in (failed.traceback or "")
    skipped = next(s for s in record.steps if s.name == "after")
    assert skipped.error == "upstream step 'explode' failed"
    assert "explode: RuntimeError" in (record.error or "")


def test_a_failed_step_is_not_cached_and_the_rerun_resumes(runner):
    runner.run(pipeline(make, total, explode))
    CALLS.clear()
    result = runner.run(pipeline(make, total, explode))
    assert CALLS == ["explode"]
    assert result.steps["make"] is StepStatus.CACHED


def test_cache_miss_when_output_bytes_were_deleted(runner, stores):
    _, artifacts = stores
    first = runner.run(pipeline(make, total))
    artifacts.delete(first.outputs["total"].digest)
    CALLS.clear()
    result = runner.run(pipeline(make, total))
    assert CALLS == ["total"]
    assert artifacts.exists(result.outputs["total"].digest)


def test_pipeline_inputs_are_stored_and_fed(runner, stores):
    metadata, _ = stores
    p = Pipeline([total], inputs=["frame", "info"])
    result = runner.run(p, inputs={"frame": pd.DataFrame({"x": [1, 2]}), "info": {"n": 1}})
    assert result.ok
    record = metadata.get_run(result.run_id)
    assert {ref.name for ref in record.steps[0].inputs} == {"frame", "info"}


def test_missing_pipeline_input_fails_before_recording_a_run(runner, stores):
    metadata, _ = stores
    with pytest.raises(MissingInputError, match="needs inputs \\['frame', 'info'\\]"):
        runner.run(Pipeline([total], inputs=["frame", "info"]))
    assert metadata.list_runs() == []


def test_wrong_number_of_returned_values_fails_the_step(runner):
    bad = Step(lambda: 1, "bad", inputs={}, outputs=("a", "b"))
    result = runner.run(pipeline(bad))
    assert "declares 2 outputs" in result.failures["bad"]


def test_interrupt_marks_run_and_running_step_interrupted(stores):
    metadata, artifacts = stores

    @step
    def stop():
        raise KeyboardInterrupt

    with LocalExecutor(artifacts, lambda: metadata) as executor:
        runner = Runner(metadata, artifacts, executor)
        with pytest.raises(KeyboardInterrupt):
            runner.run(pipeline(make, stop))
    record = metadata.list_runs()[0]
    assert record.status is RunStatus.INTERRUPTED
    statuses = {s.name: s.status for s in record.steps}
    assert statuses["make"] is StepStatus.SUCCEEDED
    assert statuses["stop"] is StepStatus.INTERRUPTED


def test_hooks_see_every_step(stores):
    metadata, artifacts = stores
    seen: list[tuple[str, str]] = []

    class Recorder(RunHooks):
        def before_step_run(self, step_name):
            seen.append(("start", step_name))

        def after_step_run(self, step_name, status, duration):
            seen.append((str(status), step_name))

        def on_step_error(self, step_name, error):
            seen.append(("error", step_name))

    with LocalExecutor(artifacts, lambda: metadata) as executor:
        Runner(metadata, artifacts, executor, hooks=Recorder()).run(
            pipeline(make, total, explode, after)
        )
    assert seen == [
        ("start", "make"),
        ("succeeded", "make"),
        ("start", "total"),
        ("succeeded", "total"),
        ("start", "explode"),
        ("error", "explode"),
        ("failed", "explode"),
        ("skipped", "after"),
    ]


def test_threaded_local_executor_gives_the_same_outputs(stores):
    metadata, artifacts = stores
    p = pipeline(make, total, side)
    with LocalExecutor(artifacts, lambda: metadata, workers=3) as executor:
        threaded = Runner(metadata, artifacts, executor).run(p, use_cache=False)
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        inline = Runner(metadata, artifacts, executor).run(p, use_cache=False)
    assert threaded.ok and threaded.outputs == inline.outputs


def test_a_failing_step_keeps_the_metrics_it_logged(runner, stores):
    metadata, _ = stores

    @step
    def diverge(ctx):
        for epoch in range(3):
            ctx.log_metric("loss", 1.0 / (epoch + 1), iteration=epoch)
        raise FloatingPointError("loss is nan")

    result = runner.run(pipeline(diverge))
    assert result.failures == {"diverge": "FloatingPointError: loss is nan"}
    assert metadata.get_run(result.run_id).metrics == {"loss": 1.0 / 3}
