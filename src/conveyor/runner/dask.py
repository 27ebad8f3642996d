"""Run steps on a Dask cluster: a LocalCluster of worker processes, or a scheduler address."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from conveyor.runner._execute import execute
from conveyor.runner.base import AbstractExecutor, FailureKind, StepOutcome

if TYPE_CHECKING:
    from conveyor.runner.base import StepTask

_WORKER_STORES: dict[tuple[str, str], Any] = {}


class DaskExecutor(AbstractExecutor):
    """Sends each step to a Dask worker; workers reopen the stores from their URIs.

    Args:
        artifacts_uri: artifact store URI the workers can reach (not ``memory://``).
        metadata_url: metadata store URL, opened on a worker only by steps that take ``ctx``.
        storage_options: fsspec options for the artifact store.
        address: a scheduler address (``tcp://host:8786``); None starts a ``LocalCluster``.
        workers: number of worker processes for the local cluster.

    Raises:
        ValueError: the artifact store lives in this process's memory.
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
    ) -> None:
        if artifacts_uri.startswith("memory://"):
            raise ValueError(
                "the dask executor needs an artifact store its workers can reach, not memory://"
            )
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError("the dask executor needs: pip install 'conveyor[dask]'") from exc
        self._stores = (artifacts_uri, metadata_url, dict(storage_options or {}))
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            address = self._cluster.scheduler_address
        self._client = Client(address)

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        out: Future[StepOutcome] = Future()
        remote = self._client.submit(_run_on_worker, task, *self._stores, pure=False)

        def _done(fut: Any) -> None:
            try:
                out.set_result(fut.result())
            except BaseException as exc:  # the worker died or the task was cancelled
                now = time.time()
                out.set_result(
                    StepOutcome(
                        now, now, error=f"dask worker failed: {exc!r}", failure=FailureKind.ERROR
                    )
                )

        remote.add_done_callback(_done)
        return out

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _run_on_worker(
    task: StepTask, artifacts_uri: str, metadata_url: str, storage_options: dict[str, Any]
) -> StepOutcome:
    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import open_metadata_store

    key = (artifacts_uri, repr(sorted(storage_options.items())))
    if key not in _WORKER_STORES:
        _WORKER_STORES[key] = open_artifact_store(artifacts_uri, storage_options=storage_options)
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
