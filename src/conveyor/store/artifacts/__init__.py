"""Artifact stores: immutable, content-addressed bytes, and the serializers that fill them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.errors import ArtifactStorageError
from conveyor.store.artifacts.base import AbstractArtifactStore, StoredArtifact, sha256
from conveyor.store.artifacts.memory import InMemoryArtifactStore

__all__ = [
    "AbstractArtifactStore",
    "InMemoryArtifactStore",
    "StoredArtifact",
    "open_artifact_store",
    "sha256",
]


def open_artifact_store(
    uri: str, *, storage_options: dict[str, Any] | None = None, base_dir: Path | None = None
) -> AbstractArtifactStore:
    """Open the artifact store at ``uri``: a folder path, ``memory://`` or an object store URI
    (``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix``; see
    docs/storage.md).

    Credentials and endpoints for cloud URIs come from ``storage_options`` (where ``${VAR}`` is
    expanded from the environment, then from ``base_dir/.env``) or the drivers' own environment
    variables (``AWS_*``, ``AZURE_STORAGE_*``, ``GOOGLE_APPLICATION_CREDENTIALS``), never from
    the URI itself.

    Raises:
        ArtifactStorageError: the URI's filesystem is unknown, its driver is not installed, or a
            ``${VAR}`` in ``storage_options`` is unset.
    """
    if uri == "memory://":
        return InMemoryArtifactStore()
    from conveyor.store.artifacts._filesystems import (
        credentials,
        filesystem_class,
        first_line,
        open_filesystem,
    )
    from conveyor.store.artifacts.fsspec import FsspecArtifactStore

    options = _expanded(storage_options or {}, base_dir)
    try:
        filesystem_class(uri)
    except (ImportError, ValueError) as exc:
        raise ArtifactStorageError(
            f"cannot open artifact store {uri!r}: {exc} "
            "(cloud URIs need an extra: pip install 'conveyor[s3]', '[gcs]' or '[azure]')"
        ) from exc
    try:
        fs, root = open_filesystem(uri, options)
    except Exception as exc:  # a driver rejecting its options or credentials
        problem = first_line(exc)
        for secret in credentials(options):
            problem = problem.replace(secret, "***")
        # Not chained: the driver's exception may quote a credential.
        raise ArtifactStorageError(
            f"cannot open artifact store {uri!r}: {problem} (store.storage_options)"
        ) from None
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        fs.makedirs(root, exist_ok=True)
    return FsspecArtifactStore(fs, root, uri=uri)


def _expanded(options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``storage_options`` with ``${VAR}`` expanded, so conveyor.yaml never holds a key."""
    from conveyor import _secrets
    from conveyor.errors import DataValidationError

    try:
        expanded: dict[str, Any] = _secrets.expand_tree(
            options, "store.storage_options", base_dir or Path.cwd()
        )
    except DataValidationError as exc:
        raise ArtifactStorageError(str(exc)) from None
    return expanded
