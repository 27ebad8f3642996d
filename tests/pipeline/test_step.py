"""Step definitions: inputs, outputs and params bound from the function signature."""

from __future__ import annotations

import pytest

from conveyor.pipeline import Step, step


def test_bare_decorator_binds_arguments_without_defaults_as_inputs():
    @step
    def clean(raw, threshold=0.5):
        return raw

    assert isinstance(clean, Step)
    assert clean.name == "clean"
    assert dict(clean.inputs) == {"raw": "raw"}
    assert clean.outputs == ("clean",)
    assert dict(clean.params) == {}


def test_options_rename_inputs_and_outputs_and_fix_params():
    @step(name="split", inputs=["data"], outputs=("train", "test"), params={"seed": 3})
    def do_split(frame, seed):
        return frame, frame

    assert dict(do_split.inputs) == {"frame": "data"}
    assert do_split.outputs == ("train", "test")
    assert do_split.params == {"seed": 3}


def test_ctx_argument_is_not_an_input():
    @step
    def record(model, ctx):
        return 1

    assert dict(record.inputs) == {"model": "model"}
    assert record.wants_context


def test_with_params_returns_a_copy():
    @step
    def scale(x, factor=1):
        return x * factor

    doubled = scale.with_params(factor=2)
    assert doubled.params == {"factor": 2}
    assert scale.params == {}


def test_step_is_still_callable():
    @step
    def add(a, b):
        return a + b

    assert add(2, 3) == 5


def test_unknown_param_is_a_type_error_at_definition():
    def f(x):
        return x

    with pytest.raises(TypeError, match="param \\['nope'\\] is not an argument"):
        step(f, params={"nope": 1})


def test_unbound_argument_is_a_type_error():
    def f(x, y):
        return x

    with pytest.raises(TypeError, match="'y' is neither input nor param"):
        Step(f, "f", inputs={"x": "x"}, outputs=("out",))


def test_wrong_number_of_input_names_is_a_type_error():
    def f(x, y):
        return x

    with pytest.raises(TypeError, match="2 arguments"):
        step(f, inputs=["only_one"])


@pytest.mark.parametrize("outputs", [(), ("a", "a")])
def test_bad_outputs_are_a_value_error(outputs):
    with pytest.raises(ValueError, match="output"):
        step(lambda x: x, name="f", outputs=outputs)


def test_kwargs_function_accepts_any_input_names():
    def gather(**models):
        return sorted(models)

    s = Step(
        gather, "gather", inputs={"model_a": "model_a", "model_b": "model_b"}, outputs=("names",)
    )
    assert set(s.inputs) == {"model_a", "model_b"}


def test_version_and_depends_on_are_kept_and_survive_with_params():
    import json

    @step(version="2", depends_on=[json, "json"])
    def load(raw, limit=1):
        return raw

    assert load.version == "2"
    assert load.depends_on == ("json", "json")
    copied = load.with_params(limit=3)
    assert (copied.version, copied.depends_on) == ("2", ("json", "json"))


def test_depends_on_rejects_what_is_neither_module_nor_path():
    with pytest.raises(TypeError, match="depends_on takes"):

        @step(depends_on=[42])  # type: ignore[list-item]
        def load(raw):
            return raw
