"""Step cache: reuse an earlier successful execution whose key matches and whose bytes exist."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__
from conveyor.pipeline import key_parts

if TYPE_CHECKING:
    from conveyor.pipeline import KeyParts, Step
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ArtifactRef, CacheHit, RunStore


class CacheMode(StrEnum):
    """Whether the cache could serve a step, recorded with its key parts for ``--explain``."""

    ON = "on"
    NO_CACHE = "no-cache"  # the run was started with --no-cache
    STEP_OFF = "step-off"  # the step says cache=False


def parts_for(step: Step, arguments: dict[str, ArtifactRef]) -> KeyParts:
    """The cache key parts of ``step`` fed with ``arguments``, under this conveyor version."""
    return key_parts(step, {arg: ref.digest for arg, ref in arguments.items()}, __version__)


def key_for(step: Step, arguments: dict[str, ArtifactRef]) -> str:
    """The cache key of ``step`` fed with ``arguments``, under this conveyor version."""
    return parts_for(step, arguments).key


def mode_for(step: Step, *, use_cache: bool) -> CacheMode:
    """How the cache applies to ``step`` in a run with (or without) ``--no-cache``."""
    if not use_cache:
        return CacheMode.NO_CACHE
    return CacheMode.ON if step.cache else CacheMode.STEP_OFF


def recorded(parts: KeyParts, step: Step, mode: CacheMode) -> dict[str, Any]:
    """What the metadata store keeps of a step's key: the parts, the dataset name behind each
    argument, and the cache mode."""
    return {**parts.to_json(), "datasets": dict(step.inputs), "cache": str(mode)}


def lookup(key: str, metadata: RunStore, artifacts: AbstractArtifactStore) -> CacheHit | None:
    """The reusable earlier execution for ``key``, or None.

    A hit whose output bytes were deleted from the artifact store is not reusable.
    """
    hit = metadata.find_cache_hit(key)
    if hit is None or not all(artifacts.exists(ref.digest) for ref in hit.outputs):
        return None
    return hit
