"""Dataset versions: a SHA-256 fingerprint of the data's content, columns, dtypes and schema."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def fingerprint(
    df: pd.DataFrame, *, schema_hash: str | None = None, ignore_row_order: bool = False
) -> str:
    """SHA-256 over column names, dtypes, every cell and the schema's hash.

    Same data -> same fingerprint; one changed cell -> a different one. Row order counts unless
    ``ignore_row_order`` (then the per-row hashes are sorted before hashing). Vectorised: one
    64-bit hash per row from pandas, no Python loop over rows.
    """
    import pandas as pd

    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    rows = pd.util.hash_pandas_object(df, index=False).to_numpy()
    if ignore_row_order:
        rows = np.sort(rows)
    digest.update(rows.tobytes())
    digest.update(f"\x1d{schema_hash or ''}".encode())
    return digest.hexdigest()
