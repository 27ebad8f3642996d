"""conveyor: the machine-learning assembly line, as code and config.

The public API is imported lazily, so ``conveyor --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__

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
