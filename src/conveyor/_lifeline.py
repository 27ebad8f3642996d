"""Worker processes that die with the process that started them.

A process pool's workers block reading their task queue, and they hold that queue's write end
themselves, so a SIGKILL of the parent never reaches them: they, the forkserver they hold open
and the resource tracker would live on, re-parented to init, for ever. ``exit_with_parent``
(called first thing in every worker conveyor starts) watches, on a daemon thread, the pipe
multiprocessing keeps to the parent (its "parent sentinel", readable once the parent is gone)
and, once a second, whether the parent's pid is still a live process; either way it ends the
worker when the parent is gone. The forkserver and the resource tracker leave by themselves once
the last worker holding their pipes has gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path

__all__ = ["exit_with_parent", "process_running"]

EXIT_CODE = 70  # EX_SOFTWARE: the work was abandoned, not finished
POLL = 1.0  # seconds between checks of the parent's pid
_PROC = Path("/proc")


def exit_with_parent(grace: float | None = None) -> bool:
    """In a multiprocessing child, exit as soon as the parent process is gone.

    With ``grace``, first ask this process to stop with SIGTERM (a server finishes its requests
    and flushes its logs) and exit anyway after ``grace`` seconds. Returns False (and does
    nothing) outside a multiprocessing child.
    """
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if parent is None or sentinel is None:
        return False

    pid = parent.pid

    def watch() -> None:
        while not wait([sentinel], timeout=POLL) and process_running(pid):
            pass
        if grace is not None:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(grace)
        os._exit(EXIT_CODE)  # no cleanup: the parent that would want the results is gone

    threading.Thread(target=watch, name="conveyor-exit-with-parent", daemon=True).start()
    return True


def process_running(pid: int | None) -> bool:
    """Whether ``pid`` is a process on this host that has not exited (a zombie has: it only
    awaits its parent's wait()). None, an unknown pid, counts as running."""
    if pid is None:
        return True
    if _PROC.is_dir():
        try:
            stat = (_PROC / str(pid) / "stat").read_bytes()
        except FileNotFoundError:
            return False
        return stat.rsplit(b")", 1)[1].split()[0] != b"Z"  # the name may hold ")"
    try:  # no /proc (macOS): ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
