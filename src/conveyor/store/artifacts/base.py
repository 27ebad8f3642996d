"""The artifact store interface: immutable bytes addressed by their SHA-256."""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from conveyor.errors import ArtifactCorruptedError, ArtifactError, ArtifactNotFoundError
from conveyor.store.artifacts import serializers

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """What the store knows about one artifact: its address, size and how to decode it."""

    digest: str
    size: int
    kind: str


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the address of an artifact."""
    return hashlib.sha256(data).hexdigest()


class AbstractArtifactStore(ABC):
    """Content-addressed, write-once storage for artifact bytes.

    Public methods validate, verify hashes and translate errors; backends implement the private
    ``_write`` / ``_read`` / ``_exists`` / ``_delete`` / ``_location`` verbs.
    """

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` (no-op if already present) and return its SHA-256 address."""
        digest = sha256(data)
        if not self._exists(digest):
            self._write(digest, data)
            logger.debug("stored artifact %s (%d bytes)", digest, len(data))
        return digest

    def get_bytes(self, digest: str) -> bytes:
        """Return the bytes stored under ``digest`` after checking they still hash to it.

        Raises:
            ArtifactNotFoundError: nothing is stored under ``digest``.
            ArtifactCorruptedError: the stored bytes hash to something else.
        """
        _check_digest(digest)
        if not self._exists(digest):
            raise ArtifactNotFoundError(f"artifact {digest} not found at {self._location(digest)}")
        data = self._read(digest)
        actual = sha256(data)
        if actual != digest:
            raise ArtifactCorruptedError(digest, actual, self._location(digest))
        return data

    def put(self, obj: Any) -> StoredArtifact:
        """Serialize ``obj`` by type (DataFrame -> Parquet, estimator -> joblib...) and store it."""
        kind, data = serializers.serialize(obj)
        return StoredArtifact(self.put_bytes(data), len(data), kind)

    def get(self, digest: str, kind: str) -> Any:
        """Load, verify and decode the artifact ``digest`` stored as ``kind``."""
        return serializers.deserialize(kind, self.get_bytes(digest))

    def exists(self, digest: str) -> bool:
        """Whether bytes are stored under ``digest`` (not verified)."""
        _check_digest(digest)
        return self._exists(digest)

    def delete(self, digest: str) -> None:
        """Remove the artifact; deleting a missing one is not an error."""
        _check_digest(digest)
        if self._exists(digest):
            self._delete(digest)

    def location(self, digest: str) -> str:
        """Where the artifact's bytes live, for people (a path or URI)."""
        _check_digest(digest)
        return self._location(digest)

    def put_memo(self, key: str, data: bytes) -> None:
        """Remember small ``data`` under ``key`` (64 hex digits: a hash of everything the data
        was computed from), replacing what was there. A memo only saves work: what it points at
        is read back through :meth:`get` and verified like any artifact."""
        _check_digest(key)
        self._write_memo(key, data)

    def get_memo(self, key: str) -> bytes | None:
        """What :meth:`put_memo` remembered under ``key``, or None."""
        _check_digest(key)
        return self._read_memo(key)

    @property
    @abstractmethod
    def uri(self) -> str:
        """The URI this store was opened from; ``open_artifact_store(uri)`` reopens it."""

    @abstractmethod
    def _write(self, digest: str, data: bytes) -> None: ...

    @abstractmethod
    def _read(self, digest: str) -> bytes: ...

    @abstractmethod
    def _exists(self, digest: str) -> bool: ...

    @abstractmethod
    def _delete(self, digest: str) -> None: ...

    @abstractmethod
    def _location(self, digest: str) -> str: ...

    @abstractmethod
    def _write_memo(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _read_memo(self, key: str) -> bytes | None: ...


def _check_digest(digest: str) -> None:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ArtifactError(f"{digest!r} is not a SHA-256 artifact address (64 hex digits)")
