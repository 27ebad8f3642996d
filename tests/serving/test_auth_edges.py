"""API keys at their edges: the token format, the key ring's verdicts and the key's name in them,
where a token is read from in the headers, and names a key may have."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

import pytest

from conveyor.serving.auth import (
    PREFIX,
    AuthResult,
    KeyRing,
    create_key,
    hash_secret,
    token_from_headers,
)
from conveyor.store.metadata import open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.store.metadata import SqlMetadataStore


@pytest.fixture
def store() -> Iterator[SqlMetadataStore]:
    metadata = open_metadata_store("sqlite://")
    yield metadata
    metadata.close()


def test_hash_secret_is_hmac_sha256_keyed_by_the_hex_salt() -> None:
    salt = "0f" * 16
    expected = hmac.new(bytes.fromhex(salt), b"s3cret", hashlib.sha256).hexdigest()
    assert hash_secret(salt, "s3cret") == expected
    assert hash_secret("00" * 16, "s3cret") != expected


def test_a_new_key_reads_prefix_id_secret_and_is_stored_with_a_128_bit_salt(
    store: SqlMetadataStore,
) -> None:
    new = create_key(store, "svc.reader-1")
    match = re.fullmatch(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})", new.token)
    assert match is not None, new.token
    key_id, secret = match.groups()
    [row] = store.list_api_keys()
    assert (row.name, row.key_id) == ("svc.reader-1", key_id)
    assert new.record == row
    assert re.fullmatch("[0-9a-f]{32}", row.salt)
    assert row.hash == hash_secret(row.salt, secret)
    assert KeyRing(store.list_api_keys).check(new.token) == (AuthResult.OK, "svc.reader-1")


@pytest.mark.parametrize("name", ["a", "A" * 100, "9.x_y-z"])
def test_key_names_of_1_to_100_letters_digits_dots_dashes_underscores(
    store: SqlMetadataStore, name: str
) -> None:
    assert create_key(store, name).record.name == name


@pytest.mark.parametrize("name", ["", "A" * 101, "-lead", ".lead", "has space", "semi;colon"])
def test_other_key_names_are_refused_with_the_rule(store: SqlMetadataStore, name: str) -> None:
    with pytest.raises(ValueError) as caught:
        create_key(store, name)
    assert str(caught.value) == (
        f"key name {name!r}: use 1-100 letters, digits, '.', '_' or '-' (starting with a "
        "letter or digit)"
    )
    assert store.list_api_keys() == []


def test_each_refusal_names_the_key_it_was_for(store: SqlMetadataStore) -> None:
    token = create_key(store, "ops").token
    ring = KeyRing(store.list_api_keys)
    wrong_secret = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert ring.check(wrong_secret) == (AuthResult.INVALID, "ops")
    store.revoke_api_key("ops")
    ring.refresh()
    assert ring.check(token) == (AuthResult.REVOKED, "ops")
    assert ring.check(wrong_secret) == (AuthResult.INVALID, "ops")  # a wrong secret stays wrong


def test_a_well_formed_token_of_an_unknown_id_is_invalid_and_anonymous(
    store: SqlMetadataStore,
) -> None:
    token = create_key(store, "ops").token
    ring = KeyRing(store.list_api_keys)
    _, key_id, secret = token.split("_", 2)
    other_id = "0" * 12 if key_id != "0" * 12 else "1" * 12
    assert ring.check(f"{PREFIX}_{other_id}_{secret}") == (AuthResult.INVALID, None)
    # the secret of a real key under its own id, but a malformed token around it
    for token_like in (f"{token} ", f"x{token}", f"{PREFIX}_{key_id}__{secret}", secret):
        assert ring.check(token_like) == (AuthResult.INVALID, None)
    assert ring.check("") == (AuthResult.MISSING, None)
    assert ring.check(None) == (AuthResult.MISSING, None)


def test_the_ring_knows_every_key_and_forgets_deleted_ones(store: SqlMetadataStore) -> None:
    tokens = {name: create_key(store, name).token for name in ("a", "b", "c")}
    loaded = store.list_api_keys()
    ring = KeyRing(lambda: loaded)
    for name, token in tokens.items():
        assert ring.check(token) == (AuthResult.OK, name)
    loaded = [k for k in loaded if k.name != "b"]
    ring.refresh()
    assert ring.check(tokens["b"]) == (AuthResult.INVALID, None)
    assert ring.check(tokens["a"]) == (AuthResult.OK, "a")


@pytest.mark.parametrize(
    ("authorization", "api_key", "token"),
    [
        (None, "cvk_k", "cvk_k"),
        (None, "  cvk_k \t", "cvk_k"),
        ("Bearer cvk_a", "cvk_b", "cvk_b"),  # X-API-Key wins
        ("Bearer cvk_a", None, "cvk_a"),
        ("bearer cvk_a", None, "cvk_a"),
        ("BEARER cvk_a", None, "cvk_a"),
        ("Bearer   cvk_a  ", None, "cvk_a"),
        ("Bearer cvk_a extra", None, "cvk_a extra"),  # the check refuses it, not the parser
        ("Bearer", None, None),
        ("Bearer ", None, None),
        ("Bearer    ", None, None),
        ("Basic cvk_a", None, None),
        ("Bearercvk_a", None, None),
        ("", None, None),
        (None, "", None),
        (None, None, None),
        ("Token cvk_a", "", None),
    ],
)
def test_token_from_headers(
    authorization: str | None, api_key: str | None, token: str | None
) -> None:
    assert token_from_headers(authorization, api_key) == token


def test_a_token_with_anything_around_it_is_invalid(store: SqlMetadataStore) -> None:
    token = create_key(store, "ops").token
    ring = KeyRing(store.list_api_keys)
    assert ring.check(token)[0] == AuthResult.OK
    for padded in (token + "\n", token + "x", "x" + token, " " + token):
        assert ring.check(padded)[0] == AuthResult.INVALID, repr(padded)
