"""Candidate estimators named by dotted path: checked to be estimator classes before any call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.config import CandidateConfig
from conveyor.errors import ConfigError
from conveyor.training.candidates import build_estimator

if TYPE_CHECKING:
    from pathlib import Path


def test_a_dotted_path_to_a_function_is_refused_before_it_is_called(tmp_path: Path) -> None:
    """Hardening finding 12: `estimator: subprocess.getoutput` ran with its params."""
    marker = tmp_path / "ran"
    candidate = CandidateConfig(
        name="evil", estimator="subprocess.getoutput", params={"cmd": f"touch {marker}"}
    )
    with pytest.raises(ConfigError, match=r"evil\]\.estimator: subprocess.getoutput is not an"):
        build_estimator(candidate)
    assert not marker.exists()


@pytest.mark.parametrize("path", ["builtins.dict", "os.system", "collections.OrderedDict"])
def test_classes_and_callables_without_fit_are_refused(path: str) -> None:
    with pytest.raises(ConfigError, match="is not an estimator class"):
        build_estimator(CandidateConfig(name="c", estimator=path))


def test_an_estimator_class_is_built_with_its_params() -> None:
    built = build_estimator(
        CandidateConfig(
            name="t", estimator="sklearn.tree.DecisionTreeClassifier", params={"max_depth": 2}
        )
    )
    assert built.get_params()["max_depth"] == 2
    with pytest.raises(ConfigError, match=r"t\]\.params"):
        build_estimator(
            CandidateConfig(
                name="t", estimator="sklearn.tree.DecisionTreeClassifier", params={"nope": 1}
            )
        )
