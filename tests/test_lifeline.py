"""Process liveness as conveyor sees it: for interrupted runs and for workers whose parent died."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conveyor._lifeline import exit_with_parent, process_running


def test_this_process_is_running() -> None:
    assert process_running(os.getpid())


def test_an_unknown_pid_counts_as_running() -> None:
    assert process_running(None)


def test_a_reaped_child_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_running(child.pid)


def test_a_zombie_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while process_running(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # exited but not yet waited for: a zombie
    try:
        assert not process_running(child.pid)
        assert os.path.exists(f"/proc/{child.pid}")  # still there, as a zombie
    finally:
        child.wait()


def test_outside_a_multiprocessing_child_nothing_is_watched() -> None:
    assert exit_with_parent() is False
