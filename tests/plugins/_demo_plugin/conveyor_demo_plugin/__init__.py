"""A third-party conveyor plugin, as a user would write it in their own package.

Registered through ``conveyor_demo_plugin-1.0.dist-info/entry_points.txt`` (no pip install):
a ``jsonl`` data source, a ``file`` alert channel, a ``fraction`` serializer and a ``counting``
executor.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from conveyor.errors import DataValidationError
from conveyor.runner import LocalExecutor

if TYPE_CHECKING:
    from concurrent.futures import Future

    from conveyor.config import AlertConfig, SourceConfig
    from conveyor.monitoring.alerts import Alert
    from conveyor.project import ExecutorSettings
    from conveyor.runner import StepOutcome, StepTask


class JsonLinesSource:
    """``type: jsonl``: one JSON object per line at ``path`` (relative to the project)."""

    def load(self, source: SourceConfig, base_dir: Path) -> pd.DataFrame:
        path = self._path(source, base_dir)
        if not path.is_file():
            raise DataValidationError(f"{path}: no such JSON-lines file (data.source.path)")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        return pd.DataFrame.from_records(rows)

    def describe(self, source: SourceConfig, base_dir: Path) -> str:
        return f"jsonl:{self._path(source, base_dir)}"

    def checksum(self, source: SourceConfig, base_dir: Path) -> str:
        return hashlib.sha256(self._path(source, base_dir).read_bytes()).hexdigest()

    @staticmethod
    def _path(source: SourceConfig, base_dir: Path) -> Path:
        return base_dir / (source.path or "data.jsonl")


class FileChannel:
    """``type: file``: appends each alert as one JSON line to ``options.path``."""

    name = "file"

    def __init__(self, config: AlertConfig) -> None:
        path = config.options.get("path")
        if not isinstance(path, str):
            raise ValueError("options.path: the file to append alerts to is required")
        self.path = Path(path)
        self.on = config.on

    def send(self, alert: Alert) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert.payload(), sort_keys=True) + "\n")


class FractionSerializer:
    """``fraction``: a :class:`fractions.Fraction` as ``numerator/denominator`` text."""

    def handles(self, value: Any) -> bool:
        return isinstance(value, Fraction)

    def dump(self, value: Any) -> bytes:
        return f"{value.numerator}/{value.denominator}".encode()

    def load(self, data: bytes) -> Any:
        return Fraction(data.decode())


class CountingExecutor(LocalExecutor):
    """``executor: {type: counting}``: the local executor, counting the steps it runs."""

    name = "counting"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings.artifacts(), settings.metadata)
        self.label = str(settings.config.options.get("label", ""))
        self.submitted: list[str] = []

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        self.submitted.append(task.step.name)
        return super().submit(task)
