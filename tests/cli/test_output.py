"""stdout carries only conveyor's own output: what native code or child processes write to file
descriptor 1 (LightGBM's network setup on Dask workers) goes to stderr."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import os, subprocess, sys
from conveyor.cli._output import native_stdout_to_stderr, print_json

with native_stdout_to_stderr():
    os.write(1, b"[native] Trying to bind port 1234\\n")
    subprocess.run([sys.executable, "-c", "print('[child] hello')"], check=True)
    print_json({"status": "succeeded"})
print_json({"after": True})
"""


def test_native_and_child_output_goes_to_stderr_and_json_stays_parseable() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    documents = proc.stdout.strip().split("\n}\n")
    assert json.loads(documents[0] + "\n}") == {"status": "succeeded"}
    assert json.loads(documents[1]) == {"after": True}
    assert "[native] Trying to bind port 1234" in proc.stderr
    assert "[child] hello" in proc.stderr
    assert "native" not in proc.stdout and "child" not in proc.stdout
