"""The Dask cluster conveyor works on: the one a task runs on, a scheduler address, or a
local cluster it starts."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    from collections.abc import Iterator


CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a scheduler (Dask retries a refused connection meanwhile, in case the
scheduler is still starting)."""


def connect(
    address: str, *, timeout: float = CONNECT_TIMEOUT, what: str = "executor.address"
) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``.

    Raises:
        ConveyorError: dask.distributed is not installed.
        ConfigError: ``address`` is not a scheduler address, or nothing answers there within
            ``timeout`` seconds (the message names ``what`` and the address).
    """
    Client = _distributed().Client
    try:
        return Client(address, timeout=timeout)
    except ValueError as exc:  # distributed cannot parse it
        raise ConfigError(
            f"{what}: {address!r} is not a Dask scheduler address ({exc}); expected tcp://HOST:PORT"
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"{what}: no Dask scheduler answered at {address} within {timeout:g} s "
            f"({_last_cause(exc)}); start one (dask scheduler) or fix the address"
        ) from exc


def _last_cause(exc: BaseException) -> str:
    """Why the connection failed: the socket error under Dask's "timed out" when there is one
    (connection refused, host unknown), else Dask's own message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"{type(seen).__name__}: {seen.strerror}"
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConveyorError("this needs dask.distributed: pip install 'conveyor[dask]'") from None
    return distributed


def local_cluster(workers: int | None = None) -> Any:
    """A ``LocalCluster`` of single-threaded worker processes on loopback, one per core by
    default, with no dashboard and its HTTP endpoint on a free port (the default, 8787, is
    often taken by another cluster: distributed would warn and move)."""
    return _distributed().LocalCluster(
        n_workers=workers or max(1, os.cpu_count() or 1),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )


@contextmanager
def dask_client(address: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster to use: the one this code runs on when it is a task on a Dask
    worker (a step sent by the ``dask`` executor), else the scheduler at ``address``, else a
    :func:`local_cluster` of ``workers`` processes, closed on exit."""
    dist = _distributed()
    try:
        dist.get_worker()
    except ValueError:
        pass
    else:
        with dist.worker_client() as client:
            yield client
        return
    if address is not None:
        with connect(address) as client:
            yield client
        return
    with local_cluster(workers) as cluster, dist.Client(cluster) as client:
        yield client
