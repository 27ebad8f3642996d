"""Run steps on a Dask cluster: a LocalCluster of worker processes, or a scheduler address.

Each step travels to its worker as one pickled task, opened only there: the scheduler (which
deserialises what it is sent) and the worker need conveyor installed, not the project's code.
The worker first puts the client's own code folders (the project folder among them) on its
``sys.path`` where they exist, so steps, derive functions and estimators defined in the
project import on workers that share its file system. When a worker dies in the middle of a
step, Dask runs the step again on another worker (up to ``distributed.scheduler.allowed-failures``
times, 3 by default); the step's record then describes the attempt that produced its outputs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from conveyor._dask import CONNECT_TIMEOUT, connect, local_cluster
from conveyor.runner._execute import execute
from conveyor.runner.base import AbstractExecutor, FailureKind, StepOutcome

if TYPE_CHECKING:
    from conveyor.runner.base import StepTask

logger = logging.getLogger(__name__)

"""Seconds to wait for a scheduler at ``address`` to answer (Dask's own default is 30)."""

_WORKER_STORES: dict[tuple[str, str], Any] = {}


class DaskExecutor(AbstractExecutor):
    """Sends each step to a Dask worker; workers reopen the stores from their URIs.

    Args:
        artifacts_uri: artifact store URI the workers can reach (not ``memory://``).
        metadata_url: metadata store URL, opened on a worker only by steps that take ``ctx``.
        storage_options: fsspec options for the artifact store; ``${VAR}`` references are
            expanded on each worker, from the worker's environment (set them where the workers
            run; their values never travel through the scheduler).
        address: a scheduler address (``tcp://host:8786``); None starts a ``LocalCluster``.
        workers: number of worker processes for the local cluster.
        connect_timeout: seconds to wait for the scheduler at ``address``.

    Raises:
        ValueError: the artifact store lives in this process's memory.
        ConfigError: no Dask scheduler answers at ``address`` (the message names it).
        ImportError: dask.distributed is not installed (``pip install 'conveyor[dask]'``).
    """

    name = "dask"

    def __init__(
        self,
        artifacts_uri: str,
        metadata_url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        address: str | None = None,
        workers: int = 2,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if artifacts_uri.startswith("memory://"):
            raise ValueError(
                "the dask executor needs an artifact store its workers can reach, not memory://"
            )
        try:
            from distributed import Client
        except ImportError as exc:
            raise ImportError("the dask executor needs: pip install 'conveyor[dask]'") from exc
        self._stores = (artifacts_uri, metadata_url, dict(storage_options or {}))
        self._cluster = None
        if address is None:
            self._cluster = local_cluster(workers)
            self._address = str(self._cluster.scheduler_address)
            self._client = Client(self._address)
            return
        self._address = address
        self._client = connect(address, timeout=connect_timeout)

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        from distributed.protocol.pickle import dumps

        out: Future[StepOutcome] = Future()
        submitted = time.time()
        name = task.step.name
        try:
            remote = self._client.submit(
                _run_on_worker,
                name,
                dumps(task),  # opened on the worker, once it can import the project's code
                _code_paths(),
                *self._stores,
                key=f"conveyor-{name}-{uuid.uuid4().hex}",
                pure=False,
            )
        except Exception as exc:  # the client lost its scheduler, or the task does not pickle
            out.set_result(_lost(name, exc, submitted, self._address))
            return out

        def _done(fut: Any) -> None:  # runs on Dask's callback thread
            try:
                outcome = fut.result()
            except BaseException as exc:  # every worker that tried died, or it was cancelled
                out.set_result(_lost(name, exc, submitted, self._address))
                return
            deaths = self._worker_deaths(fut.key)
            if deaths:
                logger.warning(
                    "step %r: %d Dask worker(s) died while running it; Dask ran it again, "
                    "and its record describes the attempt that succeeded",
                    name,
                    deaths,
                )
            out.set_result(outcome)

        remote.add_done_callback(_done)
        return out

    def _worker_deaths(self, key: str) -> int:
        """How many workers died while running task ``key`` (0 if the scheduler cannot say)."""
        try:
            deaths: int = self._client.run_on_scheduler(_suspicious, key)
        except Exception:  # best effort: this only feeds a warning
            logger.debug("could not ask the scheduler about task %s", key, exc_info=True)
            return 0
        return deaths

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _lost(name: str, exc: BaseException, submitted: float, address: str) -> StepOutcome:
    """The outcome of a step whose Dask task ended without a result (the task itself never
    raises: a step's own errors come back as outcomes)."""
    import asyncio
    import concurrent.futures

    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        error = (
            f"every Dask worker that ran step {name!r} died while running it "
            f"({exc.allowed_failures + 1} attempts, distributed.scheduler.allowed-failures="
            f"{exc.allowed_failures}); the last one was {exc.last_worker.address}: "
            "its log says why (out of memory?)"
        )
    elif isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
        reason = getattr(exc, "reason", None) or "unknown"
        error = (
            f"the Dask task running step {name!r} was cancelled ({reason}): the scheduler at "
            f"{address} went away or restarted"
        )
    else:
        error = f"cannot run step {name!r} on the Dask scheduler at {address}: {exc!r}"
    return StepOutcome(
        submitted,  # the step was running (or queued) since then, not since now
        time.time(),
        error=error,
        error_type=type(exc).__name__,
        failure=FailureKind.ERROR,
    )


def _suspicious(key: str, dask_scheduler: Any = None) -> int:
    """On the scheduler: how many workers died while processing task ``key``."""
    task = dask_scheduler.tasks.get(key) if dask_scheduler is not None else None
    return 0 if task is None else int(task.suspicious)


def _code_paths() -> tuple[str, ...]:
    """This process's ``sys.path`` folders that are not part of the Python installation: where
    the project's own modules (and any editable installs) are imported from."""
    installed = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        inside = any(path == root or path.startswith(root + os.sep) for root in installed)
        if not inside and os.path.isdir(path) and path not in paths:
            paths.append(path)
    return tuple(paths)


def _use_code_paths(paths: tuple[str, ...]) -> None:
    """On a worker: put the client's code folders that exist here first on ``sys.path``."""
    import importlib

    missing = [p for p in paths if p not in sys.path and os.path.isdir(p)]
    if missing:
        sys.path[:0] = missing
        importlib.invalidate_caches()


def _run_on_worker(
    name: str,
    payload: bytes,
    paths: tuple[str, ...],
    artifacts_uri: str,
    metadata_url: str,
    storage_options: dict[str, Any],
) -> StepOutcome:
    from distributed.protocol.pickle import loads

    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import open_metadata_store

    started = time.time()
    _use_code_paths(paths)
    try:
        task: StepTask = loads(payload)
    except Exception as exc:
        return _failed_here(
            started,
            exc,
            f"cannot load step {name!r} on Dask worker {_worker_address()}: "
            f"{type(exc).__name__}: {exc} (the worker must import the code the step uses; "
            f"conveyor puts these folders on its sys.path where they exist: {list(paths)})",
        )
    key = (artifacts_uri, repr(sorted(storage_options.items())))
    if key not in _WORKER_STORES:
        try:
            _WORKER_STORES[key] = open_artifact_store(
                artifacts_uri, storage_options=storage_options
            )
        except Exception as exc:
            return _failed_here(started, exc, f"on Dask worker {_worker_address()}: {exc}")
    metadata: list[Any] = []

    def _metadata() -> Any:
        if not metadata:
            metadata.append(open_metadata_store(metadata_url))
        return metadata[0]

    try:
        return execute(task, _WORKER_STORES[key], _metadata)
    finally:
        if metadata:
            metadata[0].close()


def _failed_here(started: float, exc: Exception, error: str) -> StepOutcome:
    import traceback

    return StepOutcome(
        started,
        time.time(),
        error=error,
        traceback=traceback.format_exc(),
        error_type=type(exc).__name__,
        failure=FailureKind.ERROR,
    )


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:  # not inside a worker (a test calling the function directly)
        return "(no worker)"
