"""Artifact addresses are checked and artifact bytes verified, with the exact words a person
reads: a malformed address, a missing artifact and bytes that no longer match their hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from conveyor.errors import ArtifactCorruptedError, ArtifactError, ArtifactNotFoundError
from conveyor.store.artifacts import AbstractArtifactStore, open_artifact_store, sha256
from conveyor.store.artifacts.base import StoredArtifact


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AbstractArtifactStore:
    if request.param == "memory":
        return open_artifact_store("memory://")
    return open_artifact_store(str(tmp_path / "artifacts"))


def test_sha256_is_the_hex_digest() -> None:
    assert sha256(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_put_returns_the_address_size_and_kind_of_the_stored_bytes(
    store: AbstractArtifactStore,
) -> None:
    stored = store.put({"b": 1, "a": [1, 2]})
    assert isinstance(stored, StoredArtifact)
    data = store.get_bytes(stored.digest)
    assert stored == StoredArtifact(sha256(data), len(data), "json")
    assert store.get(stored.digest, stored.kind) == {"a": [1, 2], "b": 1}
    frame = pd.DataFrame({"x": [1, 2, 3]})
    table = store.put(frame)
    assert table.kind == "parquet" and table.size == len(store.get_bytes(table.digest))
    pd.testing.assert_frame_equal(store.get(table.digest, "parquet"), frame)


def test_put_bytes_writes_only_what_is_not_there(
    store: AbstractArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    real_write = store._write

    def counting_write(digest: str, data: bytes) -> None:
        writes.append(digest)
        real_write(digest, data)

    monkeypatch.setattr(store, "_write", counting_write)
    first = store.put_bytes(b"one")
    assert store.put_bytes(b"one") == first
    second = store.put_bytes(b"two")
    assert writes == [first, second]
    assert store.exists(first) and store.exists(second)


@pytest.mark.parametrize(
    "bad",
    ["X" * 64, "0" * 63 + "X", "0" * 63 + "-", "0" * 63 + "\n", "F" * 64, "0" * 32],
)
@pytest.mark.parametrize("verb", ["get_bytes", "exists", "delete", "location"])
def test_an_address_that_is_not_64_lowercase_hex_digits_is_refused(
    store: AbstractArtifactStore, verb: str, bad: str
) -> None:
    with pytest.raises(ArtifactError) as caught:
        getattr(store, verb)(bad)
    assert str(caught.value) == f"{bad!r} is not a SHA-256 artifact address (64 hex digits)"


def test_every_hex_digit_is_a_valid_address_character(store: AbstractArtifactStore) -> None:
    digest = "0123456789abcdef" * 4
    assert not store.exists(digest)
    store.delete(digest)
    assert digest in store.location(digest)


def test_a_missing_artifact_says_where_it_was_looked_for(store: AbstractArtifactStore) -> None:
    digest = "ab" * 32
    with pytest.raises(ArtifactNotFoundError) as caught:
        store.get_bytes(digest)
    assert str(caught.value) == f"artifact {digest} not found at {store.location(digest)}"


def test_corrupted_bytes_are_refused_naming_both_hashes_and_the_place(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "artifacts"))
    digest = store.put_bytes(b"model bytes")
    path = Path(store.location(digest))
    path.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorruptedError) as caught:
        store.get_bytes(digest)
    err = caught.value
    assert (err.digest, err.actual, err.location) == (digest, sha256(b"tampered"), str(path))
    assert str(err) == (
        f"artifact {digest} at {path} is corrupted: its bytes hash to {sha256(b'tampered')}; "
        "refusing to load it"
    )


def test_delete_removes_only_what_exists(store: AbstractArtifactStore) -> None:
    keep, gone = store.put_bytes(b"keep"), store.put_bytes(b"gone")
    store.delete(gone)
    assert not store.exists(gone) and store.exists(keep)
    store.delete(gone)
    assert store.get_bytes(keep) == b"keep"
