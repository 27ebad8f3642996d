"""Cache keys see code: the project modules a step imports, conveyor's own code, declared
versions and dependencies; cosmetic edits and code outside the project do not count."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING

import pytest

from conveyor.pipeline import KeyParts, Step, cache_key, key_parts
from conveyor.pipeline.fingerprint import CONVEYOR_CODE, canonical_json

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

INPUTS = {"numbers": "a" * 64}


class Project:
    """A throw-away project folder on sys.path with uniquely named modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self.modules: list[str] = []

    def name(self, base: str) -> str:
        return f"{base}_{self.tag}"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative.replace("TAG", self.tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("TAG", self.tag), encoding="utf-8")
        return path

    def step(self, module: str, attr: str = "scaled") -> Step:
        name = self.name(module)
        self.modules.append(name)
        found = getattr(importlib.import_module(name), attr)
        assert isinstance(found, Step)
        return found


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made = Project(root)
    yield made
    for name in [m for m in sys.modules if made.tag in m]:
        del sys.modules[name]


HELPERS = '''\
    """Helpers the steps call."""


    def scale(values, factor):
        """Multiply every value."""
        # one comprehension
        return [v * factor for v in values]
    '''

STEPS = """\
    from conveyor.pipeline import step

    from helpers_TAG import scale


    @step
    def scaled(numbers):
        return scale(numbers, 2)
    """


def _key(s: Step, version: str = "1") -> str:
    return cache_key(s, INPUTS, version)


def test_editing_an_imported_helper_changes_the_key(project: Project) -> None:
    helpers = project.write("helpers_TAG.py", HELPERS)
    project.write("steps_TAG.py", STEPS)
    s = project.step("steps")
    before = key_parts(s, INPUTS, "1")

    helpers.write_text(helpers.read_text().replace("v * factor", "v * factor + 1"))
    after = key_parts(s, INPUTS, "1")

    assert after.key != before.key
    label = f"module helpers_{project.tag}.py"
    assert before.code[label] != after.code[label]
    own = f"function steps_{project.tag}:scaled"
    assert before.code[own] == after.code[own]  # the step itself did not change


def test_comments_docstrings_and_blank_lines_do_not_change_the_key(project: Project) -> None:
    helpers = project.write("helpers_TAG.py", HELPERS)
    steps = project.write("steps_TAG.py", STEPS)
    s = project.step("steps")
    before = _key(s)

    helpers.write_text(
        helpers.read_text()
        .replace('"""Multiply every value."""', '"""Multiply each value by the factor."""')
        .replace("# one comprehension", "# a list comprehension\n\n")
        .replace('"""Helpers the steps call."""', "# no module docstring now")
    )
    steps.write_text(steps.read_text() + "\n# a trailing comment\n")

    assert _key(s) == before


def test_project_modules_are_followed_transitively_through_relative_imports(
    project: Project,
) -> None:
    project.write("pkg_TAG/__init__.py", "")
    project.write("pkg_TAG/api.py", "from . import deep\nfrom .deep import VALUE\n")
    deep = project.write("pkg_TAG/deep.py", "VALUE = 1\n")
    project.write(
        "steps_TAG.py",
        """\
        from conveyor.pipeline import step
        from pkg_TAG.api import VALUE

        @step
        def scaled(numbers):
            return [n * VALUE for n in numbers]
        """,
    )
    s = project.step("steps")
    before = key_parts(s, INPUTS, "1")
    assert f"module pkg_{project.tag}/deep.py" in before.code

    deep.write_text("VALUE = 2\n")
    assert _key(s) != before.key


def test_modules_outside_the_project_are_ignored(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = elsewhere / f"outside_{project.tag}.py"
    outside.write_text("FACTOR = 2\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    project.write(
        "steps_TAG.py",
        """\
        import json
        import pandas as pd
        from conveyor.pipeline import step
        from outside_TAG import FACTOR

        @step
        def scaled(numbers):
            return pd.Series(numbers).mul(FACTOR).tolist() + json.loads("[]")
        """,
    )
    s = project.step("steps")
    before = key_parts(s, INPUTS, "1")
    modules = [label for label in before.code if label.startswith("module ")]
    assert modules == []  # json, pandas, conveyor and a module outside the project: none counts
    assert f"function steps_{project.tag}:scaled" in before.code

    outside.write_text("FACTOR = 3\n")
    assert _key(s) == before.key


def test_declared_version_changes_the_key(project: Project) -> None:
    project.write("helpers_TAG.py", HELPERS)
    project.write("steps_TAG.py", STEPS)
    s = project.step("steps")
    v2 = Step(s.func, s.name, s.inputs, s.outputs, version="2")
    v3 = Step(s.func, s.name, s.inputs, s.outputs, version="3")

    assert len({_key(s), _key(v2), _key(v3)}) == 3
    assert key_parts(v2, INPUTS, "1").version == "2"


def test_depends_on_files_and_modules_are_part_of_the_key(project: Project) -> None:
    lookup = project.write("data/lookup.csv", "a,b\n1,2\n")
    extra = project.write("extra_TAG.py", "LIMIT = 1\n")
    project.write(
        "steps_TAG.py",
        """\
        from conveyor.pipeline import step

        @step(depends_on=["data/lookup.csv", "extra_TAG"])
        def scaled(numbers):
            return numbers
        """,
    )
    s = project.step("steps")
    assert s.depends_on == (str(lookup.resolve()), f"extra_{project.tag}")
    first = key_parts(s, INPUTS, "1")
    assert "file data/lookup.csv" in first.code

    lookup.write_text("a,b\n1,3\n")
    second = _key(s)
    extra.write_text("LIMIT = 2\n")
    third = _key(s)

    assert len({first.key, second, third}) == 3


def test_depends_on_something_missing_fails_at_definition(project: Project) -> None:
    def scaled(numbers: list[int]) -> list[int]:
        return numbers

    with pytest.raises(ValueError, match=r"data/nope\.csv"):
        Step(scaled, "scaled", {"numbers": "numbers"}, ("scaled",), depends_on=["data/nope.csv"])
    with pytest.raises(ValueError, match="no_such_module_anywhere"):
        Step(
            scaled,
            "scaled",
            {"numbers": "numbers"},
            ("scaled",),
            depends_on=["no_such_module_anywhere"],
        )


def test_built_in_steps_include_the_conveyor_code_fingerprint() -> None:
    builtin = Step(canonical_json, "canon", {"value": "v"}, ("canon",))
    parts = key_parts(builtin, {"value": "b" * 64}, "1")

    assert len(parts.code[CONVEYOR_CODE]) == 64
    assert not [label for label in parts.code if label.startswith("module ")]


def test_built_in_steps_see_project_code_their_params_name_by_dotted_path(
    project: Project,
) -> None:
    estimator = project.write("est_TAG.py", "class Model:\n    depth = 1\n")
    config = {"candidate": {"estimator": f"est_{project.tag}.Model"}, "derive": ["json:loads"]}
    builtin = Step(canonical_json, "canon", {}, ("canon",), params={"value": config})
    before = key_parts(builtin, {}, "1")
    assert list(before.code) == [
        "function conveyor.pipeline.fingerprint:canonical_json",
        CONVEYOR_CODE,
        f"module est_{project.tag}.py",
    ]

    estimator.write_text("class Model:\n    depth = 2\n")
    assert key_parts(builtin, {}, "1").key != before.key


def test_key_parts_round_trip_through_json() -> None:
    parts = KeyParts(
        code={"function m:f": "module", "module m.py": "c" * 64},
        version="2",
        params={"seed": "d" * 64},
        inputs={"numbers": "a" * 64},
        outputs=("scaled",),
        conveyor="1.0",
    )
    again = KeyParts.from_json(parts.to_json())
    assert again == parts
    assert again.key == parts.key


SIBLINGS = """\
    from conveyor.pipeline import step

    FACTOR = 2
    OTHER = 5


    def double(values):
        return [v * FACTOR for v in values]


    class Offset:
        amount = 1


    @step
    def scaled(numbers):
        return [v + Offset.amount for v in double(numbers)]


    @step
    def other(numbers):
        return [v * OTHER for v in numbers]
    """


def test_a_step_sees_the_helpers_classes_and_constants_of_its_own_module_it_uses(
    project: Project,
) -> None:
    steps = project.write("steps_TAG.py", SIBLINGS)
    s = project.step("steps")
    before = _key(s)
    for old, new in (
        ("FACTOR = 2", "FACTOR = 3"),  # a constant the helper reads
        ("return [v * FACTOR", "return [v * FACTOR * 1"),  # the helper function
        ("amount = 1", "amount = 2"),  # a class it uses
    ):
        text = steps.read_text()
        steps.write_text(text.replace(old, new))
        assert _key(s) != before, old
        steps.write_text(text)
        assert _key(s) == before


def test_editing_a_sibling_step_of_the_same_module_leaves_a_step_cached(project: Project) -> None:
    steps = project.write("steps_TAG.py", SIBLINGS)
    s = project.step("steps")
    sibling = project.step("steps", "other")
    before, sibling_before = _key(s), _key(sibling)
    steps.write_text(steps.read_text().replace("OTHER = 5", "OTHER = 6"))
    assert _key(s) == before
    assert _key(sibling) != sibling_before
    steps.write_text(steps.read_text().replace("v * OTHER", "v * OTHER + 1"))
    assert _key(s) == before
