"""``conveyor build-image``: which builder it picks, and the command line it runs.

The real builds run in tests/e2e/test_container.py; here the choice and the flags are checked
with stand-ins for PATH lookups, and the CLI with a PATH that holds only what a test puts there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.image import (
    CA_BUNDLE,
    NoBuilderError,
    Tool,
    build_command,
    docker_ready,
    pick_tool,
)
from conveyor.cli.main import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def which_of(*installed: str) -> dict[str, str]:
    return {name: f"/usr/bin/{name}" for name in installed}


def test_docker_first_when_its_daemon_answers() -> None:
    found = which_of("docker", "podman", "buildah")
    assert pick_tool(None, which=found.get, daemon=lambda _: True) == (
        Tool.docker,
        "/usr/bin/docker",
    )


def test_a_docker_cli_without_a_daemon_falls_back_to_podman_then_buildah() -> None:
    found = which_of("docker", "podman", "buildah")
    assert pick_tool(None, which=found.get, daemon=lambda _: False)[0] is Tool.podman
    found = which_of("docker", "buildah")
    assert pick_tool(None, which=found.get, daemon=lambda _: False)[0] is Tool.buildah


def test_no_builder_says_what_was_tried_and_what_to_install() -> None:
    found = which_of("docker")
    with pytest.raises(NoBuilderError) as caught:
        pick_tool(None, which=found.get, daemon=lambda _: False)
    message = str(caught.value)
    assert "docker: /usr/bin/docker cannot reach a Docker daemon" in message
    assert "podman: not installed" in message and "buildah: not installed" in message
    assert "apt-get install podman buildah runc" in message


def test_a_requested_tool_is_used_or_refused_never_replaced() -> None:
    found = which_of("podman", "buildah")
    assert pick_tool(Tool.buildah, which=found.get)[0] is Tool.buildah
    with pytest.raises(NoBuilderError, match="docker: not installed"):
        pick_tool(Tool.docker, which=found.get)


def test_daemonless_builds_get_the_flags_this_kind_of_machine_needs(tmp_path: Path) -> None:
    argv = build_command(
        Tool.buildah,
        "/usr/bin/buildah",
        tmp_path,
        tag="visa-server:latest",
        build_args=["BASE=localhost/conveyor-base:bookworm"],
        ca_bundle=CA_BUNDLE,
    )
    assert argv[:4] == ["/usr/bin/buildah", "bud", "--tag", "visa-server:latest"]
    joined = " ".join(argv)
    assert "--isolation chroot" in joined and "--network host" in joined
    assert "--format docker" in joined  # the OCI format would drop HEALTHCHECK
    assert f"--volume {CA_BUNDLE}:{CA_BUNDLE}:ro" in joined
    assert f"--build-arg PIP_CERT={CA_BUNDLE}" in joined
    assert "--build-arg BASE=localhost/conveyor-base:bookworm" in joined
    assert argv[-1] == str(tmp_path)
    podman = build_command(Tool.podman, "podman", tmp_path, tag="t", ca_bundle=None)
    assert podman[1] == "build" and "--volume" not in podman and "--isolation" in podman


def test_docker_builds_get_no_daemonless_flags(tmp_path: Path) -> None:
    argv = build_command(
        Tool.docker, "docker", tmp_path, tag="t", build_args=["A=1"], ca_bundle=CA_BUNDLE
    )
    assert argv == ["docker", "build", "--tag", "t", "--build-arg", "A=1", str(tmp_path)]


def test_docker_ready_is_false_for_a_cli_that_fails(tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert docker_ready(str(fake)) is False
    assert docker_ready(str(tmp_path / "missing")) is False


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = CliRunner(env=ENV).invoke(app, ["init", str(tmp_path / "churn")])
    assert result.exit_code == 0, result.output
    return tmp_path / "churn"


def fake_tool(folder: Path, name: str) -> None:
    """An executable ``name`` on the test's PATH that records its arguments."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "$@" > "{folder}/{name}.args"\n', encoding="utf-8")
    script.chmod(0o755)


def build(project: Path, path: Path, *args: str) -> tuple[int, str]:
    env = {**ENV, "PATH": str(path)}
    result = CliRunner(env=env).invoke(app, ["build-image", "-p", str(project), *args])
    return result.exit_code, result.output


def test_cli_with_no_builder_fails_with_the_reason(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    code, output = build(project, empty)
    assert code == 1
    assert "no image builder available" in output


def test_cli_builds_with_the_tool_on_path(project: Path, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    fake_tool(tools, "buildah")
    code, output = build(project, tools, "--base", "b:1", "--spec", "conveyor==0.1")
    assert code == 0, output
    args = (tools / "buildah.args").read_text(encoding="utf-8").split()
    assert args[:3] == ["bud", "--tag", "churn-server:latest"]
    assert "BASE=b:1" in args and "CONVEYOR_SPEC=conveyor==0.1" in args
    assert args[-1] == str(project)


def test_cli_dry_run_prints_the_command_only(project: Path, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    fake_tool(tools, "podman")
    code, output = build(project, tools, "--dry-run", "-t", "x:1")
    assert code == 0, output
    assert output.startswith(f"{tools}/podman build --tag x:1 ")
    assert not (tools / "podman.args").exists()


def test_cli_refuses_a_folder_without_dockerfile_and_a_bad_build_arg(
    project: Path, tmp_path: Path
) -> None:
    tools = tmp_path / "bin"
    fake_tool(tools, "podman")
    code, output = build(project, tools, "--build-arg", "NOVALUE")
    assert code == 2 and "expected KEY=VALUE" in output
    os.remove(project / "Dockerfile")
    code, output = build(project, tools)
    assert code == 1 and "no Dockerfile" in output
