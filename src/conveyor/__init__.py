"""conveyor: the machine-learning assembly line, as code and config.

The public API is imported lazily, so ``conveyor --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__

# OpenMP threads (scikit-learn's HistGradientBoosting, LightGBM) busy-wait between parallel
# regions by default. On a machine with other work (a CI runner, a server, tuning processes) that
# spinning starves everyone: a 450-row HistGradientBoosting fit measured 6.4 s with two spinning
# threads against 0.08 s with passive waiting. Set before any OpenMP runtime is loaded; a user's
# own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from conveyor.pipeline import Pipeline, Step, StepContext, pipeline, step
    from conveyor.project import Project, load_model

__all__ = [
    "Pipeline",
    "Project",
    "Step",
    "StepContext",
    "__version__",
    "load_model",
    "pipeline",
    "step",
]

_LAZY = {
    "Pipeline": "conveyor.pipeline",
    "Step": "conveyor.pipeline",
    "StepContext": "conveyor.pipeline",
    "pipeline": "conveyor.pipeline",
    "step": "conveyor.pipeline",
    "Project": "conveyor.project",
    "load_model": "conveyor.project",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
