"""Artifact store on any fsspec filesystem: a local folder, s3://, gs://, az:// (abfs://)."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from conveyor.errors import ArtifactStorageError, ConveyorError
from conveyor.store.artifacts._filesystems import first_line, scheme
from conveyor.store.artifacts.base import AbstractArtifactStore

if TYPE_CHECKING:
    from collections.abc import Iterator


class FsspecArtifactStore(AbstractArtifactStore):
    """Stores artifact ``<digest>`` at ``<root>/sha256/<digest[:2]>/<digest>``.

    On filesystems with an atomic rename (local disks) bytes go to a temporary name first and are
    renamed into place, so a crash never leaves a half-written artifact under its final name. On
    object stores (S3, GCS, Azure Blob) an object appears whole or not at all: small artifacts go
    up in one PUT, large ones as a multipart (S3), resumable (GCS) or block (Azure) upload that
    only becomes visible when it is committed. So bytes are written directly to the final key:
    a rename there would be a second full copy, and not atomic.

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
        # Locations keep the scheme the user wrote (az://, not adlfs's canonical abfs://).
        self._scheme = scheme(uri) or protocols[0]

    @property
    def uri(self) -> str:
        return self._uri

    def _path(self, digest: str) -> str:
        return f"{self._root}/sha256/{digest[:2]}/{digest}"

    def _write(self, digest: str, data: bytes) -> None:
        self._write_at(self._path(digest), digest, data)

    def _write_at(self, final: str, name: str, data: bytes) -> None:
        with self._translated(name, writing=True):
            if not self._atomic_rename:
                self._fs.pipe_file(final, data)
                return
            tmp = f"{self._root}/incoming/{name}.{uuid.uuid4().hex}.part"
            self._fs.makedirs(f"{self._root}/incoming", exist_ok=True)
            self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            try:
                self._fs.pipe_file(tmp, data)
                self._fs.mv(tmp, final)
            finally:
                if self._fs.exists(tmp):
                    self._fs.rm_file(tmp)

    def _memo_path(self, key: str) -> str:
        return f"{self._root}/memo/{key[:2]}/{key}"

    def _write_memo(self, key: str, data: bytes) -> None:
        self._write_at(self._memo_path(key), key, data)

    def _read_memo(self, key: str) -> bytes | None:
        with self._translated(key):
            try:
                data: bytes = self._fs.cat_file(self._memo_path(key))
            except FileNotFoundError:
                return None
            return data

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
        return f"{self._scheme}://{path}"

    @contextmanager
    def _translated(self, digest: str, *, writing: bool = False) -> Iterator[None]:
        try:
            yield
        except ConveyorError:
            raise
        except Exception as exc:  # fsspec backends raise OSError, botocore, aiohttp, azure errors
            hint = _hint(exc, writing=writing and not self._atomic_rename)
            raise ArtifactStorageError(
                f"artifact {digest} at {self._location(digest)}: {first_line(exc)}{hint}"
            ) from exc


def _hint(exc: Exception, *, writing: bool) -> str:
    """What to check, for the failures every object store reports in its own words.

    Object stores have no folders, so "not found" while writing to one (``writing``) means
    its bucket is missing.
    """
    text = f"{type(exc).__name__} {exc}".lower()
    missing = ("containernotfound", "nosuchbucket", "bucket does not exist")
    if (writing and isinstance(exc, FileNotFoundError)) or any(m in text for m in missing):
        return " (create the bucket or container first: conveyor never creates one)"
    if any(word in text for word in ("authenticat", "authoriz", "accessdenied", "forbidden")):
        return " (check the credentials in store.storage_options or the environment)"
    return ""
