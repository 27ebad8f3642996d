"""The public API: ``conveyor.__all__`` is complete and every name resolves."""

from __future__ import annotations

import importlib
import inspect

import conveyor


def test_every_name_in_all_resolves():
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None


def test_all_lists_the_documented_api():
    assert {"step", "Step", "Pipeline", "pipeline", "Project", "load_model"} <= set(
        conveyor.__all__
    )


def test_public_names_of_subpackages_are_in_their_all():
    for module_name in (
        "conveyor.pipeline",
        "conveyor.runner",
        "conveyor.store.metadata",
        "conveyor.store.artifacts",
    ):
        module = importlib.import_module(module_name)
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not inspect.ismodule(value)
            and getattr(value, "__module__", "").startswith(module_name)
        }
        assert public <= set(module.__all__), (module_name, public - set(module.__all__))


def test_unknown_attribute_raises_attribute_error():
    try:
        conveyor.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("conveyor.nope should not exist")
