"""Dataset versions: a SHA-256 fingerprint of the data's content, columns and dtypes."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def fingerprint(df: pd.DataFrame, *, schema_hash: str | None = None) -> str:
    """SHA-256 over column names, dtypes and every cell (row order matters).

    Same data -> same fingerprint; one changed cell -> a different one.
    """
    import pandas as pd

    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    if schema_hash:
        digest.update(schema_hash.encode())
    return digest.hexdigest()
