"""The local Dask cluster conveyor starts when no scheduler address is given."""

from __future__ import annotations

import os
from typing import Any


def local_cluster(workers: int | None = None) -> Any:
    """A ``LocalCluster`` of single-threaded worker processes on loopback, one per core by
    default, with no dashboard and its HTTP endpoint on a free port (the default, 8787, is
    often taken by another cluster: distributed would warn and move)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers or max(1, os.cpu_count() or 1),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
