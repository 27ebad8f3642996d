"""Credentials in source settings: ``${VAR}`` expansion from the environment or ``.env``, and
masking, so that no secret reaches a message, a log line or a lineage record."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

MASK = "***"

_log = logging.getLogger("conveyor.data.sources")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_KEY = re.compile(
    r"pass|pwd|secret|token|sig|credential|api_?key|access_?key|account_?key|connection_?string",
    re.I,
)
_USERINFO = re.compile(r"([a-z][\w+.-]*://[^:/@\s]*):[^@\s]+@", re.I)


def mask_uri(uri: str) -> str:
    """``uri`` with its password and secret-looking query values replaced by ``***``."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    head, q, query = rest.partition("?")
    userinfo, at, host = head.rpartition("@")
    if at and ":" in userinfo:
        head = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = re.sub(
        r"([^&=]+)=([^&]*)",
        lambda m: f"{m[1]}={MASK}" if SECRET_KEY.search(m[1]) else m[0],
        query,
    )
    return f"{scheme}://{head}{q}{query}"


def host_only(url: str) -> str:
    """``scheme://host/...``: for URLs that carry their secret in the path (webhooks)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."


def mask_tree(value: Any, key: str = "") -> Any:
    """A copy of a settings tree safe to record: values under secret-looking keys masked,
    URLs with their password and secret query values masked, webhook URLs (under ``alerts``)
    cut to their host. ``${VAR}`` references are kept: they name a secret, they do not hold one.
    """
    if isinstance(value, dict):
        return {k: mask_tree(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_tree(v, key) for v in value]
    if not isinstance(value, str) or not value or _VAR.fullmatch(value):
        return value
    if SECRET_KEY.search(key.rpartition(".")[2]):
        return MASK
    if "://" in value:
        return host_only(value) if "alerts" in key.split(".") else mask_uri(value)
    return value


def mask_url(url: str) -> str:
    """A database URL, masked; one that is not ``scheme://...`` could hide a secret anywhere."""
    return mask_uri(url) if "://" in url else MASK


def expand(value: str, key: str, base_dir: Path) -> str:
    """Expand ``${VAR}`` from os.environ, then from ``base_dir/.env`` (never loaded into it)."""
    dotenv: dict[str, str | None] | None = None

    def lookup(match: re.Match[str]) -> str:
        nonlocal dotenv
        var = match[1]
        if var in os.environ:
            return os.environ[var]
        if dotenv is None:
            dotenv = read_dotenv(base_dir / ".env")
        found = dotenv.get(var)
        if found is None:
            raise DataValidationError(
                f"{key}: environment variable {var} is not set (nor in .env in {base_dir})"
            )
        return found

    return _VAR.sub(lookup, value)


def read_dotenv(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        return dict(dotenv_values(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: cannot read: {type(exc).__name__}") from None


def expand_or_keep(value: str | None, key: str, base_dir: Path) -> str:
    """Expanded when possible; describe() must not fail, and a template holds no secret."""
    try:
        return expand(value or "", key, base_dir)
    except DataValidationError:
        return value or ""


def expand_tree(value: Any, key: str, base_dir: Path) -> Any:
    if isinstance(value, str):
        return expand(value, key, base_dir)
    if isinstance(value, dict):
        return {k: expand_tree(v, f"{key}.{k}", base_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_tree(v, key, base_dir) for v in value]
    return value


def leaves(tree: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value)
        else:
            yield str(key), value


def secrets(uri: str, *, include_whole: bool = True) -> list[str]:
    """Every form in which a credential of ``uri`` could show up in a driver's message."""
    found = [uri] if include_whole else []
    query = uri.partition("://")[2].partition("?")[2]
    raw = [password(uri) or ""]
    raw += [m[2] for m in re.finditer(r"([^&=]+)=([^&]*)", query) if SECRET_KEY.search(m[1])]
    for value in filter(None, raw):
        plain = unquote(value)
        found += [value, plain, unquote_plus(value), quote(plain, safe=""), quote_plus(plain)]
        # A parser that cut the value at a separator may quote a piece of it.
        found += [p for p in re.split(r"[@:/?#]", plain) if len(p) >= 4]
    return found


def password(uri: str) -> str | None:
    """The raw password of ``scheme://user:password@host``; the last ``@`` ends it."""
    _, sep, rest = uri.partition("://")
    userinfo, at, _ = rest.partition("?")[0].rpartition("@")
    _, colon, password = userinfo.partition(":")
    return password if sep and at and colon else None


def error(name: str, detail: str, secrets: Iterable[str]) -> DataValidationError:
    """``name: detail`` with every secret in the detail masked; ``name`` is masked already."""
    message = detail
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(secret, MASK)
    message = _USERINFO.sub(rf"\1:{MASK}@", message)
    return DataValidationError(f"{name}: {message}")


def warn_literal_password(template: str, key: str) -> None:
    literal = password(template)
    if literal and "${" not in literal:
        _log.warning(
            "%s holds a literal password: put it in an environment variable or .env and "
            "write ${VAR} instead",
            key,
        )
