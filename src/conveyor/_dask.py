"""The Dask cluster conveyor works on: the one a task runs on, a scheduler address, or a
local cluster it starts."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


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


@contextmanager
def dask_client(address: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster to use: the one this code runs on when it is a task on a Dask
    worker (a step sent by the ``dask`` executor), else the scheduler at ``address``, else a
    :func:`local_cluster` of ``workers`` processes, closed on exit."""
    from distributed import Client, get_worker, worker_client

    try:
        get_worker()
    except ValueError:
        pass
    else:
        with worker_client() as client:
            yield client
        return
    if address is not None:
        with Client(address) as client:
            yield client
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        yield client
