"""The DAG: ordering, validation before anything runs, upstream/downstream queries."""

from __future__ import annotations

import pytest

from conveyor.errors import (
    CycleError,
    DuplicateOutputError,
    MissingInputError,
    PipelineDefinitionError,
)
from conveyor.pipeline import Pipeline, Step, pipeline, step


@step(outputs="raw")
def ingest():
    return 1


@step
def clean(raw):
    return raw


@step
def features(clean):
    return clean


@step
def report(raw, features):
    return raw


def test_steps_are_ordered_topologically_whatever_the_given_order():
    p = pipeline(report, features, clean, ingest, name="p")
    order = [s.name for s in p.steps]
    assert order.index("ingest") < order.index("clean") < order.index("features")
    assert order.index("features") < order.index("report")


def test_order_is_stable_for_independent_steps():
    a = Step(lambda raw: 1, "a", inputs={"raw": "raw"}, outputs=("a",))
    b = Step(lambda raw: 2, "b", inputs={"raw": "raw"}, outputs=("b",))
    assert [s.name for s in pipeline(ingest, b, a)] == ["ingest", "b", "a"]
    assert [s.name for s in pipeline(ingest, a, b)] == ["ingest", "a", "b"]


def test_upstream_and_downstream():
    p = pipeline(ingest, clean, features, report)
    assert p.upstream("report") == {"ingest", "features"}
    assert p.downstream("clean") == {"features", "report"}
    assert p.downstream("report") == set()


def test_missing_input_names_step_input_and_what_is_available():
    with pytest.raises(MissingInputError) as info:
        pipeline(clean, features)
    message = str(info.value)
    assert "step 'clean' needs input 'raw'" in message
    assert "available: ['clean', 'features']" in message


def test_pipeline_inputs_satisfy_steps():
    p = Pipeline([clean], inputs=["raw"])
    assert [s.name for s in p] == ["clean"]


def test_cycle_is_reported_with_its_path():
    a = Step(lambda y: 1, "a", inputs={"y": "y"}, outputs=("x",))
    b = Step(lambda x: 1, "b", inputs={"x": "x"}, outputs=("y",))
    with pytest.raises(CycleError, match=r"cycle: .*a.*b|cycle: .*b.*a"):
        pipeline(a, b)


def test_duplicate_output_names_both_producers():
    other = Step(lambda: 2, "other", inputs={}, outputs=("raw",))
    with pytest.raises(DuplicateOutputError, match="'ingest' and 'other'"):
        pipeline(ingest, other)


def test_duplicate_step_names():
    twin = Step(lambda: 2, "ingest", inputs={}, outputs=("other",))
    with pytest.raises(PipelineDefinitionError, match="two steps are named 'ingest'"):
        pipeline(ingest, twin)


def test_definition_errors_are_value_errors():
    assert issubclass(CycleError, ValueError)
    assert issubclass(MissingInputError, ValueError)
