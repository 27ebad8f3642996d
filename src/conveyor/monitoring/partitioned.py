"""The drift check over partitioned current data (a folder or glob of Parquet files): each
partition loaded, scored by the model and sketched (:mod:`conveyor.monitoring.sketches`), one at a
time here or as tasks on a Dask cluster; only the merged sketch reaches this process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor._dask import dask_client
from conveyor.monitoring.sketches import (
    EXACT_CAP,
    MAX_CATEGORIES,
    FrameSketch,
    SketchOptions,
    detect_from_sketch,
    sketch_frames,
    sketch_partitions,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

    from conveyor.monitoring.alerts import Channel
    from conveyor.monitoring.drift import DriftSettings
    from conveyor.monitoring.monitor import CheckResult
    from conveyor.monitoring.profile import ReferenceProfile
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import MetadataStore


def check_partitions(
    metadata: MetadataStore,
    artifacts: AbstractArtifactStore,
    model_ref: str,
    partitions: Sequence[Callable[[], pd.DataFrame]],
    *,
    source: str,
    settings: DriftSettings | None = None,
    address: str | None = None,
    dask: bool = False,
    workers: int = 2,
    channels: list[Channel] | None = None,
    alert_cooldown_seconds: float = 3600.0,
    now: float | None = None,
) -> CheckResult:
    """:func:`monitor.check` over partitioned current data: each partition is loaded, scored
    by the model and sketched, one at a time here, or as tasks on a Dask cluster (``dask``:
    the scheduler at ``address``, else a local cluster of ``workers`` processes); the merged
    sketch gives the drift report, stored and alerted on as by :func:`monitor.check`.

    Raises:
        ConfigError: the model has no reference profile.
    """
    from conveyor.errors import ConfigError
    from conveyor.monitoring import monitor
    from conveyor.monitoring.drift import DriftSettings
    from conveyor.registry import versions

    now = time.time() if now is None else now
    record = versions.resolve(metadata, model_ref)
    profile = monitor.reference_profile(metadata, artifacts, record)
    try:
        signature = versions.signature_of(record)
    except ConfigError:
        signature = None  # the drift check does not need it: the profile knows the task
    task = signature.task if signature is not None else profile.task or "classification"
    model = versions.load(metadata, artifacts, f"{record.name}:{record.version}")
    scored = _Scored(model, profile, task)
    small = (settings or DriftSettings()).small_sample  # held exactly: the tests stay exact
    options = SketchOptions(
        exact_cap=max(EXACT_CAP, small), max_categories=max(MAX_CATEGORIES, small)
    )
    if dask:
        with dask_client(address, workers) as client:
            sketch = sketch_partitions(
                partitions, prepare=scored, reference=profile, options=options, client=client
            )
    else:
        sketch = sketch_frames(partitions, prepare=scored, reference=profile, options=options)
    drift = detect_from_sketch(profile, sketch, settings)
    return monitor.conclude(
        metadata,
        artifacts,
        record,
        drift,
        source=source,
        task=task,
        meanings=_meanings(profile, sketch, task),
        now=now,
        channels=channels,
        alert_cooldown_seconds=alert_cooldown_seconds,
    )


@dataclass(frozen=True)
class _Scored:
    """A partition with the model's predictions, and its outputs as the profile has them
    (what :func:`monitor.check` does to a whole table; runs on the workers)."""

    model: Any
    profile: ReferenceProfile
    task: str

    def __call__(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        from conveyor.monitoring import monitor

        if not len(frame):
            return frame, None
        current = monitor.with_scores(self.model, frame, self.profile, task=self.task)
        return current, monitor.outputs_of(current, self.profile)


def _meanings(profile: ReferenceProfile, sketch: FrameSketch, task: str) -> dict[str, str]:
    """What each model output holds, from the scored partitions' column names."""
    import pandas as pd

    from conveyor.monitoring import monitor

    return monitor.output_meanings(profile, pd.DataFrame(columns=sketch.source_columns), task)
