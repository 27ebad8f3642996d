"""Background work that cannot die: a periodic task on its own thread that survives any exception.

The server runs three such tasks (API-key refresh, alias following, prediction-log flushing).
Before, one exception in alias following ended the one thread that also refreshed the keys, and
revoked keys kept working for as long as the server ran. Now each task has its own thread,
every exception is caught, logged with its traceback once per distinct error, counted, and shown
on ``/ready`` and ``/metrics``; the task runs again at its next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("conveyor.serving")


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """How a supervised task is doing."""

    name: str
    ok: bool  # the last run succeeded (or none has failed yet)
    runs: int
    failures: int
    last_ok: float | None  # time.time() of the last successful run
    last_error: str | None
    stale: bool  # failing, and no successful run within the task's staleness limit


class Supervised:
    """Run ``fn`` every ``interval`` seconds on a daemon thread until :meth:`stop`.

    Args:
        name: shown in logs, ``/ready`` and ``/metrics``.
        stale_after: the task is *stale* when its last run failed and none has succeeded for
            this long (default: ten intervals, at least 1 s); a stale task makes ``/ready``
            answer 503.
        on_failure: called with the exception after each failed run (metrics); its own
            exceptions are logged and ignored.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[], object],
        *,
        interval: float,
        stale_after: float | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self.stale_after = stale_after if stale_after is not None else max(1.0, 10 * interval)
        self._fn = fn
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._runs = 0
        self._failures = 0
        self._last_ok: float | None = time.time()  # started healthy: the first load succeeded
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start ticking (the first run is one interval from now)."""
        self._thread = threading.Thread(
            target=self._loop, name=f"conveyor-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ticking and wait for a run in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def run_once(self) -> bool:
        """Run ``fn`` now, catching everything; returns whether it succeeded."""
        try:
            self._fn()
        except Exception as exc:  # survive anything: the next tick tries again
            self._failed(exc)
            return False
        with self._lock:
            self._runs += 1
            if self._last_error is not None:
                log.info("%s: recovered", self.name)
            self._last_ok, self._last_error = time.time(), None
        return True

    def status(self) -> TaskStatus:
        """A snapshot of how the task is doing."""
        with self._lock:
            # Failing for longer than stale_after (a run still in progress is not a failure:
            # loading a large model may take a while).
            stale = self._last_error is not None and (
                self._last_ok is None or time.time() - self._last_ok > self.stale_after
            )
            return TaskStatus(
                self.name,
                ok=self._last_error is None,
                runs=self._runs,
                failures=self._failures,
                last_ok=self._last_ok,
                last_error=self._last_error,
                stale=stale,
            )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._runs += 1
            self._failures += 1
            repeated = message == self._last_error
            self._last_error = message
        if repeated:  # once per distinct error, not once a second
            log.debug("%s failed again: %s", self.name, message)
        else:
            log.error("%s failed: %s", self.name, message, exc_info=exc)
        if self._on_failure is not None:
            try:
                self._on_failure(exc)
            except Exception:
                log.exception("%s: failure handler raised", self.name)
