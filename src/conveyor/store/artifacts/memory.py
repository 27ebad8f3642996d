"""In-memory artifact store, for fast tests and throw-away runs."""

from __future__ import annotations

import threading

from conveyor.store.artifacts.base import AbstractArtifactStore


class InMemoryArtifactStore(AbstractArtifactStore):
    """Keeps artifact bytes in a dict; lost when the process ends."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._memos: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return "memory://"

    def _write(self, digest: str, data: bytes) -> None:
        with self._lock:
            self._blobs[digest] = bytes(data)

    def _read(self, digest: str) -> bytes:
        return self._blobs[digest]

    def _exists(self, digest: str) -> bool:
        return digest in self._blobs

    def _delete(self, digest: str) -> None:
        with self._lock:
            self._blobs.pop(digest, None)

    def _location(self, digest: str) -> str:
        return f"memory://{digest}"

    def _write_memo(self, key: str, data: bytes) -> None:
        with self._lock:
            self._memos[key] = bytes(data)

    def _read_memo(self, key: str) -> bytes | None:
        return self._memos.get(key)
