"""Step cache: reuse an earlier successful execution whose key matches and whose bytes exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._version import __version__
from conveyor.pipeline import cache_key

if TYPE_CHECKING:
    from conveyor.pipeline import Step
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ArtifactRef, CacheHit, SqlMetadataStore


def key_for(step: Step, arguments: dict[str, ArtifactRef]) -> str:
    """The cache key of ``step`` fed with ``arguments``, under this conveyor version."""
    return cache_key(step, {arg: ref.digest for arg, ref in arguments.items()}, __version__)


def lookup(
    key: str, metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> CacheHit | None:
    """The reusable earlier execution for ``key``, or None.

    A hit whose output bytes were deleted from the artifact store is not reusable.
    """
    hit = metadata.find_cache_hit(key)
    if hit is None or not all(artifacts.exists(ref.digest) for ref in hit.outputs):
        return None
    return hit
