"""Registering and resolving model versions (``NAME``, ``NAME:VER``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ModelNotFoundError

if TYPE_CHECKING:
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ModelVersionRecord, SqlMetadataStore


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """``"m:3"`` -> ``("m", 3)``; ``"m@production"`` -> ``("m", "production")``; ``"m"`` -> latest.

    Raises:
        ModelNotFoundError: the version is not a positive integer or the alias is empty.
    """
    if "@" in ref:
        name, _, alias = ref.partition("@")
        if not name or not alias:
            raise ModelNotFoundError(f"{ref!r}: expected NAME@ALIAS")
        return name, alias
    name, sep, version = ref.partition(":")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ModelNotFoundError(f"{ref!r}: version must be a positive integer (NAME:VERSION)")
    return name, int(version)


def resolve(metadata: SqlMetadataStore, ref: str) -> ModelVersionRecord:
    """The model version ``NAME``, ``NAME:VER`` or ``NAME@ALIAS`` names."""
    name, which = parse_ref(ref)
    if isinstance(which, str):
        which = metadata.get_alias(name, which)
    return metadata.get_model_version(name, which)


def aliases_holding(metadata: SqlMetadataStore, name: str, version: int) -> list[str]:
    """The aliases of ``name`` that point at ``version``, sorted."""
    return sorted(a for (_, a), v in metadata.aliases(name).items() if v == version)


def load(metadata: SqlMetadataStore, artifacts: AbstractArtifactStore, ref: str) -> Any:
    """Load a model version's object after verifying its artifact hash."""
    record = resolve(metadata, ref)
    return artifacts.get(record.digest, metadata.artifact_kind(record.digest))
