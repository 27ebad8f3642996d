"""The container side of bench/serve.py: the image `conveyor init` writes, built with podman
from a wheel of this checkout, and run in registry mode on the benchmark's own store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/conveyor-bench/visa-server:latest"
DEBIAN_BASE = "localhost/conveyor-base:bookworm"  # what .ci/run assembles
RUN_FLAGS = (
    *("--runtime", "runc", "--network", "host"),
    *("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"),
)
BUILD_TIMEOUT_S = 1800


class ContainerUnavailableError(RuntimeError):
    """podman, or the base image, is missing: the container column is skipped."""


@dataclass(frozen=True)
class Image:
    """The benchmark's image: its name, build time and size."""

    podman: str
    name: str
    base: str
    build_s: float
    size_bytes: int


def podman() -> str:
    """The podman executable.

    Raises:
        ContainerUnavailableError: podman is not installed.
    """
    found = shutil.which("podman")
    if found is None:
        raise ContainerUnavailableError("podman is not installed (apt-get install podman runc)")
    return found


def pick_base(executable: str, given: str | None) -> str:
    """``given``, else the Debian base when podman has it, else the Dockerfile's default."""
    if given:
        return given
    exists = subprocess.run([executable, "image", "exists", DEBIAN_BASE], check=False)
    return DEBIAN_BASE if exists.returncode == 0 else "python:3.11-slim"


def build(
    project: Path, conveyor_bin: Path, *, base: str | None, say: Callable[[str], None]
) -> Image:
    """Build the project's image with `conveyor build-image --tool podman`, conveyor from a wheel
    of this checkout and every other package at the version of this venv.

    Raises:
        ContainerUnavailableError: podman is missing.
        RuntimeError: the wheel or the image did not build (the output tail is in the message).
    """
    executable = podman()
    base = pick_base(executable, base)
    context = project.parent / "image-context"
    shutil.copytree(project, context, ignore=shutil.ignore_patterns(".conveyor", "data"))
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(context), str(REPO)])
    (wheel,) = context.glob("conveyor-*.whl")
    pins = _check([sys.executable, "-m", "pip", "list", "--format=freeze", "--exclude", "conveyor"])
    (context / "constraints.txt").write_text(
        "\n".join(p for p in pins.splitlines() if "==" in p and " @ " not in p) + "\n"
    )
    say(f"container: building {IMAGE} from {base} (a few minutes the first time) ...")
    started = time.perf_counter()
    _check(
        [
            *(str(conveyor_bin), "build-image", "-p", str(context), "--tool", "podman"),
            *("--tag", IMAGE, "--base", base, "--spec", f"/tmp/install/{wheel.name}[postgres,s3]"),
            *("--build-arg", "PIP_CONSTRAINT=/tmp/install/constraints.txt"),
        ]
    )
    build_s = time.perf_counter() - started
    size = _check([executable, "image", "inspect", "--format", "{{.Size}}", IMAGE])
    return Image(executable, IMAGE, base, build_s, int(size.strip()))


def open_store(project: Path) -> None:
    """Let the image's user (uid 10001) read and write the project's embedded store."""
    store = project / ".conveyor"
    for item in [store, *store.rglob("*")]:
        item.chmod(0o777 if item.is_dir() else 0o666)


def run_command(image: Image, project: Path, port: int) -> tuple[str, list[str]]:
    """A container name and the `podman run` (attached: SIGTERM to it stops the container) of
    the registry mode on ``project``'s store, listening on ``port``."""
    name = f"conveyor-bench-{uuid.uuid4().hex[:8]}"
    cmd = [image.podman, "run", "--rm", "--name", name, *RUN_FLAGS, "--env", f"PORT={port}"]
    cmd += ["--volume", f"{project / '.conveyor'}:/app/.conveyor", image.name]
    return name, cmd


def container_pid(executable: str, name: str) -> int | None:
    """The host PID of the container's PID 1 (its server), or None when it is not running."""
    proc = subprocess.run(
        [executable, "inspect", "--format", "{{.State.Pid}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    pid = proc.stdout.strip()
    return int(pid) if proc.returncode == 0 and pid.isdigit() and pid != "0" else None


def remove(executable: str, name: str) -> None:
    """Remove the container whatever its state (nothing when it is gone already)."""
    subprocess.run([executable, "rm", "-f", "-t", "0", name], capture_output=True, check=False)


def _check(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-2000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}:\n{tail}")
    return proc.stdout
