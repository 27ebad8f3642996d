"""Loading registered models by reference, with the artifact hash checked before unpickling."""

from __future__ import annotations

from pathlib import Path

import pytest

import conveyor
from conveyor.cli.init import scaffold
from conveyor.errors import ArtifactCorruptedError, ModelNotFoundError
from conveyor.examples.visa.generate import write_csv
from conveyor.project import Project
from conveyor.registry.versions import parse_ref
from tests._visa import shrink_visa_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("visa")
    scaffold(root, example="visa")
    write_csv(root / "data" / "visa.csv", n_rows=1500)
    shrink_visa_config(root)
    with Project.load(root) as project:
        assert project.run().ok
    return root


def test_the_first_model_passing_its_gates_is_production(trained):
    with Project.load(trained) as project:
        assert project.metadata.get_alias("visa-approval", "production") == 1
        assert project.metadata.get_model_version("visa-approval", 1).status == "approved"


def test_load_model_by_name_and_version_predicts(trained):
    model = conveyor.load_model("visa-approval:1", project=trained)
    latest = conveyor.load_model("visa-approval", project=trained)
    with Project.load(trained) as project:
        split = next(
            s
            for s in project.metadata.get_run(project.metadata.list_runs()[0].id).steps
            if s.name == "split"
        )
        test_ref = next(ref for ref in split.outputs if ref.name == "test")
        frame = project.load_artifact(test_ref.digest)
    predictions = model.predict(frame.drop(columns=["case_status"]))
    assert set(predictions) <= {"Certified", "Denied"}
    assert (predictions == latest.predict(frame.drop(columns=["case_status"]))).all()


def test_unknown_version_and_unset_alias_are_model_not_found(trained):
    with pytest.raises(ModelNotFoundError, match="no model version visa-approval:9"):
        conveyor.load_model("visa-approval:9", project=trained)
    with pytest.raises(ModelNotFoundError, match="visa-approval@staging is not set"):
        conveyor.load_model("visa-approval@staging", project=trained)
    with pytest.raises(LookupError):
        conveyor.load_model("no-such-model", project=trained)


def test_a_changed_byte_is_refused_before_unpickling(trained, tmp_path):
    with Project.load(trained) as project:
        record = project.metadata.get_model_version("visa-approval", 1)
        path = Path(project.artifacts.location(record.digest))
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        with pytest.raises(ArtifactCorruptedError, match=record.digest):
            conveyor.load_model("visa-approval:1", project=trained)
    finally:
        path.write_bytes(original)
    assert conveyor.load_model("visa-approval:1", project=trained) is not None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("m", ("m", None)), ("m:3", ("m", 3)), ("m@production", ("m", "production"))],
)
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["m:0", "m:x", "m@", "@prod"])
def test_parse_ref_rejects_malformed(ref):
    with pytest.raises(ModelNotFoundError):
        parse_ref(ref)
