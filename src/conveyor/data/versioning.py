"""Dataset versions: a SHA-256 fingerprint of the data's content, columns, dtypes and schema."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd


def fingerprint(
    df: pd.DataFrame, *, schema_hash: str | None = None, ignore_row_order: bool = False
) -> str:
    """SHA-256 over column names, dtypes, every cell and the schema's hash.

    Same data -> same fingerprint; one changed cell -> a different one. Row order counts unless
    ``ignore_row_order`` (then the per-row hashes are sorted before hashing). Vectorised: one
    64-bit hash per row from pandas, no Python loop over rows.
    """
    builder = Fingerprinter(df.dtypes.items(), ignore_row_order=ignore_row_order)
    builder.add(row_hashes(df))
    return builder.finish(schema_hash)


def row_hashes(df: pd.DataFrame) -> np.ndarray[Any, Any]:
    """One 64-bit hash per row, from the cells only (not the index)."""
    import pandas as pd

    return pd.util.hash_pandas_object(df, index=False).to_numpy()


class Fingerprinter:
    """:func:`fingerprint` fed one partition at a time, in row order: the same rows give the same
    fingerprint however they are partitioned, and only one partition's row hashes (8 bytes a
    row) are held at once (all of them when ``ignore_row_order``, to sort them)."""

    def __init__(self, dtypes: Iterable[tuple[Any, Any]], *, ignore_row_order: bool = False):
        self._digest = hashlib.sha256()
        for name, dtype in dtypes:
            self._digest.update(f"{name}\x1f{dtype}\x1e".encode())
        self._unordered: list[np.ndarray[Any, Any]] | None = [] if ignore_row_order else None

    def add(self, hashes: np.ndarray[Any, Any]) -> None:
        """The row hashes (:func:`row_hashes`) of the next partition."""
        if self._unordered is not None:
            self._unordered.append(hashes)
        else:
            self._digest.update(hashes.tobytes())

    def finish(self, schema_hash: str | None) -> str:
        """The fingerprint."""
        if self._unordered is not None:
            rows = np.sort(np.concatenate(self._unordered)) if self._unordered else np.array([])
            self._digest.update(rows.astype(np.uint64).tobytes())
        self._digest.update(f"\x1d{schema_hash or ''}".encode())
        return self._digest.hexdigest()
