"""fsspec filesystems from URIs, set up the way object stores need them (artifacts and data)."""

from __future__ import annotations

import os
import sys
from typing import Any

GCSFS_HNS_VARIABLE = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
GCS = frozenset({"gs", "gcs"})


def scheme(uri: str) -> str:
    """The lower-case scheme of ``uri`` (``s3``, ``gs``, ``az``...), ``""`` for a plain path."""
    head, sep, _ = uri.partition("://")
    return head.lower() if sep else ""


def filesystem_class(uri: str) -> type:
    """The fsspec filesystem class for ``uri``'s protocol, imported.

    Raises:
        ImportError: its driver (s3fs, gcsfs, adlfs) is not installed.
        ValueError: fsspec knows no filesystem for that protocol.
    """
    import fsspec

    kind = scheme(uri)
    if kind in GCS:
        plain_gcsfs()
    found: type = fsspec.get_filesystem_class(kind or "file")
    return found


def open_filesystem(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for ``uri`` and the path inside it.

    On object stores the listing cache is off unless ``storage_options`` say otherwise: fsspec
    keeps one filesystem per set of options for the life of the process, and its cached
    listings would hide objects other processes (Dask workers, pipeline steps, another
    ``conveyor run``) wrote or deleted since. Artifacts and data files are looked up by exact
    key, so the cache saves nothing here.

    Raises:
        ImportError: the URI's driver (s3fs, gcsfs, adlfs) is not installed.
        ValueError: fsspec knows no filesystem for the URI's protocol.
    """
    import fsspec

    kind = scheme(uri)
    options = dict(storage_options or {})
    if kind in GCS:
        plain_gcsfs()
    if kind in OBJECT_STORES:
        options.setdefault("use_listings_cache", False)
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return fs, str(path)


def plain_gcsfs() -> None:
    """Use gcsfs's stable ``GCSFileSystem``, unless ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` asks
    for the experimental one.

    gcsfs (2025.x and later) defaults to an "extended" filesystem that first asks the Storage
    Control API (gRPC, not the JSON API ``endpoint_url`` points at) for each bucket's layout:
    against an emulator or a private endpoint that call waits 60 s per bucket before falling
    back. gcsfs reads the variable once, when it is imported, so it is set before fsspec imports
    gcsfs; if something imported gcsfs earlier, fsspec is pointed at the stable class instead.
    """
    if os.environ.setdefault(GCSFS_HNS_VARIABLE, "false").lower() in ("true", "1"):
        return  # set by the user: their choice
    gcsfs = sys.modules.get("gcsfs")
    if gcsfs is None:
        return
    stable = gcsfs.core.GCSFileSystem  # gcsfs/__init__ imports gcsfs.core
    if gcsfs.GCSFileSystem is not stable:
        import fsspec

        for protocol in sorted(GCS):
            fsspec.register_implementation(protocol, stable, clobber=True)


# Keys whose values are credentials although conveyor._secrets.SECRET_KEY does not match them:
# Azure's account key and connection string (which holds the key), s3fs's access key id.
_CREDENTIAL_KEYS = frozenset({"key", "account_key", "connection_string"})


def credentials(storage_options: dict[str, Any]) -> list[str]:
    """Every string in ``storage_options`` that is a credential, to mask in messages."""
    from conveyor import _secrets

    found: list[str] = []
    for key, value in _secrets.leaves(storage_options):
        if isinstance(value, str) and value:
            if key in _CREDENTIAL_KEYS or _secrets.SECRET_KEY.search(key):
                found.append(value)
    return found


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: Azure's errors append the whole XML response."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
