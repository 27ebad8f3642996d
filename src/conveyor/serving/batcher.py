"""Adaptive micro-batching: concurrent requests share one model call.

A single-row ``predict`` on an sklearn pipeline costs about the same as an 8-row one (the
per-call overhead dominates), so the server predicts one batch at a time in a worker thread and
everything that arrived meanwhile forms the next batch. No request waits for a timer: under no
load a batch is one request, under load batches grow by themselves (up to ``max_rows``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from conveyor.serving.model import LoadedModel, Predictions

log = logging.getLogger("conveyor.serving")


@dataclass(slots=True)
class Batch:
    """Requests predicted together, with the model that predicted them."""

    model: LoadedModel
    columns: dict[str, list[Any]] | None  # inputs as column lists (JSON requests) ...
    request_ids: list[str]  # one per row
    predictions: Predictions
    at: float
    seconds: float
    frame: pd.DataFrame | None = None  # ... or as the model's frame (files)


@dataclass(slots=True)
class _Pending:
    columns: dict[str, list[Any]]
    n_rows: int
    request_id: str
    future: asyncio.Future[tuple[LoadedModel, Predictions]] = field(repr=False)


class MicroBatcher:
    """Queue of pending requests, drained by one task that predicts batch after batch.

    Args:
        current: returns the model to use now (read once per batch, so a hot swap never
            splits a batch).
        max_rows: most rows per model call.
        on_batch: called on the event loop after each successful batch (metrics, log).
    """

    def __init__(
        self,
        current: Callable[[], LoadedModel],
        *,
        max_rows: int = 1024,
        on_batch: Callable[[Batch], None] | None = None,
    ) -> None:
        self._current = current
        self.max_rows = max_rows
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-predict")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start draining (call from the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def predict(
        self, columns: dict[str, list[Any]], n_rows: int, request_id: str
    ) -> tuple[LoadedModel, Predictions]:
        """Predict ``n_rows`` rows given as column lists; returns the model used and its output."""
        future: asyncio.Future[tuple[LoadedModel, Predictions]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Pending(columns, n_rows, request_id, future))
        return await future

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # One turn of the event loop lets requests already parsed join this batch (under
            # load, batches otherwise settle into two alternating halves); idle, it costs ~us.
            await asyncio.sleep(0)
            rows = batch[0].n_rows
            while rows < self.max_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                rows += item.n_rows
            await self._run(batch)

    async def _run(self, pending: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        model = self._current()
        columns = _merge([p.columns for p in pending])
        start = time.perf_counter()
        try:
            predictions = await loop.run_in_executor(self._pool, _predict, model, columns)
        except Exception as exc:  # any model failure is reported per request
            if len(pending) > 1:  # one request's rows must not fail the others: retry alone
                for item in pending:
                    await self._run([item])
                return
            if isinstance(exc, ValueError):  # the model refused these inputs: a 4xx, not a bug
                log.warning("request %s: model refused input: %s", pending[0].request_id, exc)
            else:
                log.exception("prediction failed for request %s", pending[0].request_id)
            _settle(pending[0].future, exc=exc)
            return
        seconds = time.perf_counter() - start
        offset = 0
        for item in pending:
            _settle(item.future, (model, predictions.slice(offset, offset + item.n_rows)))
            offset += item.n_rows
        if self._on_batch is not None:
            ids = [p.request_id for p in pending for _ in range(p.n_rows)]
            self._on_batch(Batch(model, columns, ids, predictions, time.time(), seconds))


def _predict(model: LoadedModel, columns: dict[str, list[Any]]) -> Predictions:
    return model.predict(model.contract.frame(columns))


def _merge(parts: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    if len(parts) == 1:
        return parts[0]
    return {name: [v for part in parts for v in part[name]] for name in parts[0]}


def _settle(
    future: asyncio.Future[tuple[LoadedModel, Predictions]],
    result: tuple[LoadedModel, Predictions] | None = None,
    *,
    exc: BaseException | None = None,
) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert result is not None
        future.set_result(result)
