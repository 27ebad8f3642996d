"""API keys: created once, stored as salted hashes, checked in constant time.

A key reads ``cvk_<id>_<secret>``. The id is public (it names the key in ``keys list`` and in
logs); the secret is 43 random URL-safe characters (256 bits) and is shown once, at creation.
Only ``HMAC-SHA256(salt, secret)`` is stored. A slow password hash (scrypt, argon2) protects
low-entropy passwords; for a 256-bit random secret a keyed SHA-256 is as safe and costs a
microsecond per request instead of tens of milliseconds.

Scopes say what a key may do: ``predict`` (the model server's routes), ``read`` (the UI's
pages), ``admin`` (the UI's governed actions). A check names the scope it needs and a key
without it is refused, naming the missing scope. Keys made before scopes existed are
``predict`` keys. The store keeps exactly the scopes a key was given; :func:`create_key` adds
``read`` to an ``admin`` key (an approver must see what they approve), and that is the only
implication anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from conveyor.errors import ConfigError
from conveyor.store.metadata import KEY_ID
from conveyor.store.metadata.records import KEY_SCOPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from conveyor.store.metadata import ApiKeyRecord, ServingStore

log = logging.getLogger("conveyor.serving")

ENV_KEYS = "CONVEYOR_API_KEYS"
"""Bundle mode's keys (no key store): comma-separated ``sha256:HEX`` digests of tokens, or
tokens of at least :data:`MIN_TOKEN` characters."""
MIN_TOKEN = 24
PREFIX = "cvk"
_KEY = re.compile(rf"{PREFIX}_({KEY_ID.pattern})_([A-Za-z0-9_-]{{43}})")  # fullmatch only
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PREDICT, READ, ADMIN = KEY_SCOPES


class AuthResult(StrEnum):
    """The outcome of checking a presented key."""

    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"
    REVOKED = "revoked"
    SCOPE = "scope"  # a valid key without the scope the request needs


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the full token exists only here, once."""

    record: ApiKeyRecord
    token: str


def hash_secret(salt: str, secret: str) -> str:
    """HMAC-SHA256 of the secret, keyed by the key's salt (hex)."""
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def create_key(metadata: ServingStore, name: str, scopes: Iterable[str] = (PREDICT,)) -> NewKey:
    """Create and record a key called ``name`` with ``scopes`` (``admin`` brings ``read``).

    Raises:
        ValueError: the name is not 1-100 letters, digits, ``.``, ``_`` or ``-``; no scope, or
            one that is not ``predict``, ``read`` or ``admin``.
        MetadataStorageError: a key with that name exists.
    """
    if not _NAME.match(name):
        raise ValueError(
            f"key name {name!r}: use 1-100 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    wanted = [scopes] if isinstance(scopes, str) else list(scopes)
    if ADMIN in wanted and READ not in wanted:
        wanted.append(READ)
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = metadata.create_api_key(
        name, key_id=key_id, salt=salt, hashed=hash_secret(salt, secret), scopes=wanted
    )
    return NewKey(record, f"{PREFIX}_{key_id}_{secret}")


class KeyCheckerProtocol(Protocol):
    """What the server asks of its keys: refresh them, and check a presented token."""

    def refresh(self) -> None:
        """Reload the keys (a no-op when they cannot change)."""

    def check(self, token: str | None, *, scope: str = PREDICT) -> tuple[AuthResult, str | None]:
        """The outcome for a presented token needing ``scope``, and the key's name when known."""


class KeyRing:
    """The keys a server accepts, refreshed from the metadata store (revocations included)."""

    def __init__(self, load: Callable[[], list[ApiKeyRecord]]) -> None:
        self._load = load
        self._keys: dict[str, ApiKeyRecord] = {}
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        """Reload the keys (called by the server's watcher every second)."""
        keys = {k.key_id: k for k in self._load()}
        with self._lock:
            self._keys = keys

    def check(self, token: str | None, *, scope: str = PREDICT) -> tuple[AuthResult, str | None]:
        """The outcome for a presented token needing ``scope``, and the key's name when known."""
        result, key = self.verify(token, scope=scope)
        return result, None if key is None else key.name

    def verify(self, token: str | None, *, scope: str) -> tuple[AuthResult, ApiKeyRecord | None]:
        """The outcome for a presented token needing ``scope``, and its key when the id is known.

        Wrong secret, then revoked, then missing scope: a revoked key is reported revoked
        whatever it may do, and only a key whose secret matched is told about its scopes.
        """
        if not token:
            return AuthResult.MISSING, None
        match = _KEY.fullmatch(token)
        key = self._keys.get(match.group(1)) if match else None
        if key is None or match is None:
            # Compare anyway, so an unknown id takes as long as a wrong secret.
            hmac.compare_digest(hash_secret("00" * 16, token), "0" * 64)
            return AuthResult.INVALID, None
        if not hmac.compare_digest(hash_secret(key.salt, match.group(2)), key.hash):
            return AuthResult.INVALID, key
        if key.revoked:
            return AuthResult.REVOKED, key
        if scope not in key.scopes:
            return AuthResult.SCOPE, key
        return AuthResult.OK, key


def token_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class StaticKeys:
    """Keys fixed at start (bundle mode: ``$CONVEYOR_API_KEYS``), held as SHA-256 digests.

    Each entry is ``sha256:HEX`` (the digest of a token: the deployment never holds the secret)
    or a token of at least :data:`MIN_TOKEN` characters. Keys are named ``env-1``, ``env-2``,
    ... by position in logs; tokens and digests are never logged. They are ``predict`` keys
    (a bundle serves predictions and nothing else).

    Raises:
        ConfigError: no key, a malformed digest or a token too short to be a secret (the
            message names the entry's position, never its value).
    """

    def __init__(self, spec: str) -> None:
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        if not entries:
            raise ConfigError(f"${ENV_KEYS} holds no key")
        self._digests = [_digest_of(entry, position) for position, entry in enumerate(entries, 1)]

    def refresh(self) -> None:
        """Nothing to reload: the keys are fixed for the life of the process."""

    def check(self, token: str | None, *, scope: str = PREDICT) -> tuple[AuthResult, str | None]:
        """The outcome for a presented token needing ``scope``, and the key's name when it
        matches."""
        if not token:
            return AuthResult.MISSING, None
        presented = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for position, digest in enumerate(self._digests, 1):  # no early exit: same time for all
            if hmac.compare_digest(presented, digest):
                found = position
        if found is None:
            return AuthResult.INVALID, None
        if scope != PREDICT:
            return AuthResult.SCOPE, f"env-{found}"
        return AuthResult.OK, f"env-{found}"


def _digest_of(entry: str, position: int) -> str:
    if entry.lower().startswith("sha256:"):
        digest = entry[7:].strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(f"${ENV_KEYS}: entry {position} is not sha256: and 64 hex digits")
        return digest
    if len(entry) < MIN_TOKEN:
        raise ConfigError(
            f"${ENV_KEYS}: entry {position} is shorter than {MIN_TOKEN} characters; use a "
            "random token (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
            "or its digest as sha256:HEX"
        )
    return hashlib.sha256(entry.encode()).hexdigest()
