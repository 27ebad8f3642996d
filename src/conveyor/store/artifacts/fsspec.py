"""Artifact store on any fsspec filesystem: a local folder, s3://, gs://, az://."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from conveyor.errors import ArtifactStorageError, ConveyorError
from conveyor.store.artifacts.base import AbstractArtifactStore

if TYPE_CHECKING:
    from collections.abc import Iterator


class FsspecArtifactStore(AbstractArtifactStore):
    """Stores artifact ``<digest>`` at ``<root>/sha256/<digest[:2]>/<digest>``.

    On filesystems with an atomic rename (local disks) bytes go to a temporary name first and are
    renamed into place, so a crash never leaves a half-written artifact under its final name. On
    object stores (S3, GCS, Azure) a single PUT is already atomic, so bytes are written directly.

    Args:
        fs: an ``fsspec.AbstractFileSystem``.
        root: the folder (or bucket/prefix) inside ``fs`` that holds the artifacts.
        uri: the URI this store was opened from, for display and re-opening.
    """

    def __init__(self, fs: Any, root: str, *, uri: str) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._uri = uri
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self._atomic_rename = bool({"file", "local"} & set(protocols))

    @property
    def uri(self) -> str:
        return self._uri

    def _path(self, digest: str) -> str:
        return f"{self._root}/sha256/{digest[:2]}/{digest}"

    def _write(self, digest: str, data: bytes) -> None:
        final = self._path(digest)
        with self._translated(digest):
            if not self._atomic_rename:
                self._fs.pipe_file(final, data)
                return
            tmp = f"{self._root}/incoming/{digest}.{uuid.uuid4().hex}.part"
            self._fs.makedirs(f"{self._root}/incoming", exist_ok=True)
            self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            try:
                self._fs.pipe_file(tmp, data)
                self._fs.mv(tmp, final)
            finally:
                if self._fs.exists(tmp):
                    self._fs.rm_file(tmp)

    def _read(self, digest: str) -> bytes:
        with self._translated(digest):
            data: bytes = self._fs.cat_file(self._path(digest))
            return data

    def _exists(self, digest: str) -> bool:
        with self._translated(digest):
            return bool(self._fs.exists(self._path(digest)))

    def _delete(self, digest: str) -> None:
        with self._translated(digest):
            self._fs.rm_file(self._path(digest))

    def _location(self, digest: str) -> str:
        path = self._path(digest)
        if self._atomic_rename:
            return path
        return str(self._fs.unstrip_protocol(path))

    @contextmanager
    def _translated(self, digest: str) -> Iterator[None]:
        try:
            yield
        except ConveyorError:
            raise
        except Exception as exc:  # fsspec backends raise OSError, botocore, aiohttp errors, ...
            raise ArtifactStorageError(
                f"artifact {digest} at {self._location(digest)}: {type(exc).__name__}: {exc}"
            ) from exc
