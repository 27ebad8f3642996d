"""Artifact stores: immutable, content-addressed bytes, and the serializers that fill them."""

from __future__ import annotations

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
    uri: str, *, storage_options: dict[str, Any] | None = None
) -> AbstractArtifactStore:
    """Open the artifact store at ``uri``: a folder path, ``memory://`` or an fsspec URI.

    Credentials and endpoints for cloud URIs come from ``storage_options`` or the environment
    (``AWS_*``, ``FSSPEC_S3_ENDPOINT_URL``, ...), never from the URI itself.

    Raises:
        ArtifactStorageError: the URI's filesystem is unknown or its driver is not installed.
    """
    if uri == "memory://":
        return InMemoryArtifactStore()
    import fsspec

    from conveyor.store.artifacts.fsspec import FsspecArtifactStore

    try:
        fs, root = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise ArtifactStorageError(
            f"cannot open artifact store {uri!r}: {exc} "
            "(cloud URIs need an extra: pip install 'conveyor[s3]', '[gcs]' or '[azure]')"
        ) from exc
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        fs.makedirs(root, exist_ok=True)
    return FsspecArtifactStore(fs, root, uri=uri)
