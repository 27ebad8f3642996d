"""Registering and resolving model versions (``NAME``, ``NAME:VER``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.contracts import ModelSignature
from conveyor.errors import ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ModelVersionRecord, RegistryStore


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


def resolve(metadata: RegistryStore, ref: str) -> ModelVersionRecord:
    """The model version ``NAME``, ``NAME:VER`` or ``NAME@ALIAS`` names."""
    name, which = parse_ref(ref)
    if isinstance(which, str):
        which = metadata.get_alias(name, which)
    return metadata.get_model_version(name, which)


def aliases_holding(metadata: RegistryStore, name: str, version: int) -> list[str]:
    """The aliases of ``name`` that point at ``version``, sorted."""
    return sorted(a for (_, a), v in metadata.aliases(name).items() if v == version)


def load(metadata: RegistryStore, artifacts: AbstractArtifactStore, ref: str) -> Any:
    """Load a model version's object after verifying its artifact hash."""
    record = resolve(metadata, ref)
    return artifacts.get(record.digest, metadata.artifact_kind(record.digest))


def signature_of(record: ModelVersionRecord) -> ModelSignature | None:
    """A version's input signature, or None when it was registered without one.

    Signatures stored before ``schema_version`` existed load as version 1.

    Raises:
        ConfigError: the stored signature is not one this conveyor can read.
    """
    if not record.signature or "columns" not in record.signature:
        return None
    from pydantic import ValidationError

    try:
        return ModelSignature.stored(record.signature)
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise ConfigError(
            f"{record.name}:{record.version}: its input signature cannot be served: {problems}"
        ) from None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    text = message.removeprefix("Value error, ")
    return f"{'.'.join(str(p) for p in loc)}: {text}" if loc else text
