"""Browser fixtures: a trained project, API keys, a real ``conveyor ui`` server, Chromium.

Playwright for Python drives Debian's Chromium (``/usr/bin/chromium``, or ``$CONVEYOR_CHROMIUM``):
no browser is ever downloaded (never run ``playwright install``). Without Playwright or
Chromium the tests skip with the reason, and fail under ``CONVEYOR_REQUIRE_SERVICES=1`` (CI,
where .ci/run installs ``chromium`` with apt).

Every tab records what the browser logged and every request it made: a console error (a CSP
violation is one) or a request to another origin fails the test. Screenshots of the pages go
under ``$CONVEYOR_UI_SCREENSHOTS`` (default: a temporary folder, printed at the end of the run);
with ``$CONVEYOR_UI_DOCS`` set to a folder, small copies of the README's screenshots go there too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from conveyor.serving.background import free_port
from tests.conftest import require_module, require_service
from tests.e2e.conftest import conveyor, spawn_conveyor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MODEL = "visa-approval"
ADMIN, READER = "ui-admin", "ui-reader"
"""The names of the two keys of the shared project: audit events name the admin ``ui:ui-admin``."""
CHROMIUM = Path(os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium"))
START_TIMEOUT = 60.0  # seconds for `conveyor ui` or `conveyor serve` to answer (busy CI machine)
VIEWPORT = {"width": 1280, "height": 800}
PAGE_TIMEOUT_MS = 15_000  # a missing element fails in 15 s, not Playwright's 30
DOCS_WIDTH = 960  # pixels: the README's screenshots
DOCS_MAX_HEIGHT = 1150  # pixels before shrinking: a run page's facts and its whole DAG
SHOTS_KEY = pytest.StashKey[Path]()
NON_NETWORK_SCHEMES = ("data", "blob", "about")


# --- the project -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UiProject:
    """A trained visa project: two train runs that differ in two parameters (v1 in production,
    v2 in staging), two drift checks (calm and drifted traffic), and two API keys."""

    root: Path
    first_run: str  # v1's run: training.tuning.trials=3, promoted to production
    second_run: str  # v2's run: training.tuning.trials=2, registry.promote.alias=staging
    admin_key: str  # scopes read + admin
    reader_key: str  # scope read only


def create_key(project: Path, name: str, *scopes: str) -> str:
    """``conveyor keys create --name NAME --scope S ...``: the key's secret token."""
    flags = [arg for scope in scopes for arg in ("--scope", scope)]
    done = conveyor("keys", "create", "--name", name, *flags, "--json", "-p", project)
    token: str = json.loads(done.stdout)["key"]
    return token


def _run_ids(project: Path) -> list[str]:
    """The project's run ids, oldest first."""
    from conveyor.project import Project

    with Project.load(project) as proj:
        return [r.id for r in reversed(proj.metadata.list_runs(limit=100))]


def _monitor(project: Path, *, seed: int, drift: bool) -> None:
    """One drift check of the production model against generated traffic."""
    from conveyor.examples.visa.generate import generate

    current = project / f"traffic-{seed}.csv"
    frame = generate(n_rows=400, seed=seed, drift=drift, dirt=False)
    frame.drop(columns=["case_status"]).to_csv(current, index=False)
    conveyor("monitor", "--current", current, "-p", project, "--json")


def _serve_some(project: Path, log_dir: Path) -> None:
    """Answer a few prediction requests with ``conveyor serve``, which logs them (the served
    volume the lineage and monitoring pages show)."""
    from tests.serving.conftest import visa_records

    token = create_key(project, "ui-client", "predict")
    with running_serve(project, log_dir) as server:
        for seed in range(3):
            response = httpx.post(
                f"{server.origin}/v1/predict",
                json={"records": visa_records(20, seed=seed)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
    # leaving the block stops it with SIGTERM: the log is flushed at shutdown


def build_ui_project(trained: Path, target: Path, log_dir: Path) -> UiProject:
    """Copy ``trained`` (one train run, v1 in production) to ``target`` and add to it what the
    pages show: a second run with other parameters, served predictions, drift checks, keys."""
    shutil.copytree(trained, target)
    _serve_some(target, log_dir)
    conveyor(
        "run",
        "-p",
        target,
        "--set",
        "registry.promote.alias=staging",
        "--set",
        "training.tuning.trials=2",
        timeout=300,
    )
    _monitor(target, seed=5, drift=False)
    _monitor(target, seed=6, drift=True)
    first, second = _run_ids(target)
    admin = create_key(target, ADMIN, "read", "admin")
    reader = create_key(target, READER, "read")
    return UiProject(target, first, second, admin, reader)


@pytest.fixture(scope="session")
def ui_project(
    trained_visa: Path, tmp_path_factory: pytest.TempPathFactory, server_logs: Path
) -> UiProject:
    """The shared project the read-only tests browse (copy it before changing it)."""
    return build_ui_project(trained_visa, tmp_path_factory.mktemp("ui") / "visa", server_logs)


@pytest.fixture
def own_project(ui_project: UiProject, tmp_path: Path) -> UiProject:
    """A private copy of ``ui_project``, for a test that moves aliases or writes events."""
    target = tmp_path / "visa"
    shutil.copytree(ui_project.root, target)
    return UiProject(
        target, ui_project.first_run, ui_project.second_run, ui_project.admin_key,
        ui_project.reader_key,
    )  # fmt: skip


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A ``conveyor`` server process on a loopback port; its output is kept for failures."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def output(self) -> str:
        """What the process printed so far (its last 4,000 characters)."""
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@contextmanager
def running(*args: str | Path, probe: str, log_dir: Path) -> Iterator[Server]:
    """Run ``conveyor ARGS --port PORT`` until the block ends; enter once ``probe`` (a path)
    answers with any HTTP status. The process is terminated, then killed, at the end."""
    port = free_port()
    log = log_dir / f"{args[0]}-{port}.log"
    with log.open("wb") as out:
        proc = spawn_conveyor(*args, "--port", str(port), stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_until_answering(server, probe)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_answering(server: Server, probe: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            httpx.get(server.origin + probe, timeout=2.0)
            return
        except httpx.TransportError:
            pass
        if server.proc.poll() is not None:
            pytest.fail(f"the server exited {server.proc.returncode}:\n{server.output()}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"the server did not answer {probe} in {START_TIMEOUT} s:\n{server.output()}"
            )
        time.sleep(0.1)


@contextmanager
def running_ui(project: Path, log_dir: Path, *, no_auth: bool = False) -> Iterator[Server]:
    """``conveyor ui -p PROJECT`` (with ``--no-auth`` if asked) on a free loopback port."""
    flags = ["--no-auth"] if no_auth else []
    with running("ui", "-p", project, *flags, probe="/signin", log_dir=log_dir) as server:
        yield server


@contextmanager
def running_serve(project: Path, log_dir: Path) -> Iterator[Server]:
    """``conveyor serve -p PROJECT`` (the registry's production alias, followed) until it is
    ready; its ``/ready`` names the version it serves."""
    with running("serve", "-p", project, probe="/health", log_dir=log_dir) as server:
        deadline = time.monotonic() + START_TIMEOUT
        while httpx.get(server.origin + "/ready").status_code != 200:
            if time.monotonic() > deadline:
                pytest.fail(f"conveyor serve never became ready:\n{server.output()}")
            time.sleep(0.1)
        yield server


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-server-logs")


@pytest.fixture(scope="session")
def ui_server(ui_project: UiProject, server_logs: Path) -> Iterator[Server]:
    """``conveyor ui`` over the shared project, with sign-in (the keys of ``ui_project``)."""
    with running_ui(ui_project.root, server_logs) as server:
        yield server


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (one per test session)."""
    sync_api = require_module("playwright.sync_api", "Playwright for Python (a dev dependency)")
    if not CHROMIUM.is_file():
        require_service(
            "Chromium",
            f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does), "
            "or point $CONVEYOR_CHROMIUM at a Chromium; never `playwright install`",
        )
    with sync_api.sync_playwright() as playwright:
        # Playwright passes --no-sandbox by default (chromium_sandbox=False): needed as root.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """A browser tab (its own context: its own cookies) on one server, recording every console
    error, uncaught page error and request."""

    page: Any
    origin: str
    shots: Path
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    checked: tuple[int, int] = (0, 0)  # errors and foreign requests already reported

    def goto(self, path: str) -> Any:
        """Open ``path`` on the server and wait until the page has loaded; the response."""
        return self.page.goto(self.origin + path, wait_until="load")

    def sign_in(self, key: str, *, then: str = "/runs") -> None:
        """Sign in on /signin with ``key`` as a user would: fill it in, press the button."""
        self.goto(f"/signin?next={then}")
        self.page.fill("input[name=key]", key)
        with self.page.expect_navigation():
            self.page.click("form[action='/signin'] button[type=submit]")
        path = urlsplit(self.page.url).path
        assert path != "/signin", f"sign-in failed: {self.page.inner_text('main')}"

    def allow_error(self, text: str) -> None:
        """Expect a console error containing ``text`` (e.g. the browser's note of a 403)."""
        self.allowed.append(text)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]

    def foreign_requests(self) -> list[str]:
        """Requests to anywhere but this server (a data: URL is no request)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in NON_NETWORK_SCHEMES
            and not _same_origin(url, self.origin)
        ]

    def assert_clean(self) -> None:
        """No console error (a CSP violation is one) and no request to another origin, since the
        last check (so a failure is reported once)."""
        __tracebackhide__ = True
        errors, foreign = self.unexpected_errors(), self.foreign_requests()
        new_errors, new_foreign = errors[self.checked[0] :], foreign[self.checked[1] :]
        self.checked = (len(errors), len(foreign))
        assert not new_errors, f"console errors on {self.page.url}:\n" + "\n".join(new_errors)
        assert not new_foreign, f"requests to another origin from {self.page.url}: {new_foreign}"

    def screenshot(self, name: str, *, docs: str | None = None) -> Path:
        """Save the whole page as ``NAME.png`` among the run's screenshots; with ``docs``, also
        a small copy of its top named ``DOCS.png`` under ``$CONVEYOR_UI_DOCS`` (the README's)."""
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        docs_dir = os.environ.get("CONVEYOR_UI_DOCS")
        if docs and docs_dir:
            small = Path(docs_dir) / f"{docs}.png"
            small.parent.mkdir(parents=True, exist_ok=True)
            bottom = self.page.evaluate("document.querySelector('main').scrollHeight")
            height = min(int(bottom) + 80, DOCS_MAX_HEIGHT)  # the header, the page, a margin
            clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}
            shrink_png(self.page.screenshot(full_page=True, clip=clip), small)
        return path


def _same_origin(url: str, origin: str) -> bool:
    parts, home = urlsplit(url), urlsplit(origin)
    return (parts.scheme, parts.netloc) == (home.scheme, home.netloc)


def shrink_png(data: bytes, target: Path) -> None:
    """``data`` (a PNG of the viewport) scaled to :data:`DOCS_WIDTH` and reduced to 256 colours:
    a screenshot the repository can hold (tens of kilobytes)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    height = round(image.height * DOCS_WIDTH / image.width)
    small = image.resize((DOCS_WIDTH, height), Image.Resampling.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where the pages' screenshots go: ``$CONVEYOR_UI_SCREENSHOTS`` or a temporary folder."""
    configured = os.environ.get("CONVEYOR_UI_SCREENSHOTS")
    folder = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="conveyor-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SHOTS_KEY] = folder
    return folder


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the screenshots are (test artifacts to look at)."""
    folder = config.stash.get(SHOTS_KEY, None)
    if folder is not None:
        terminalreporter.write_line(f"conveyor ui screenshots: {folder}")


@pytest.fixture
def open_tab(browser: Any, screenshots: Path) -> Iterator[Callable[[Server], Tab]]:
    """A factory: ``open_tab(server)`` opens a fresh tab (no cookies) on that server. At the
    end of the test every tab must be clean (see :meth:`Tab.assert_clean`)."""
    opened: list[tuple[Any, Tab]] = []

    def open_on(server: Server) -> Tab:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(page, server.origin, screenshots)
        page.on("console", lambda msg: _record_console(tab, msg))
        page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
        context.on("request", lambda req: tab.requests.append(req.url))
        opened.append((context, tab))
        return tab

    yield open_on
    for context, _ in opened:
        context.close()
    for _, tab in opened:
        tab.assert_clean()


def _record_console(tab: Tab, message: Any) -> None:
    if message.type == "error":
        where = message.location.get("url", "")
        tab.errors.append(f"{message.text} ({where})" if where else message.text)


@pytest.fixture
def tab(open_tab: Callable[[Server], Tab], ui_server: Server) -> Tab:
    """A fresh, signed-out tab on the shared ``conveyor ui`` server."""
    return open_tab(ui_server)


@pytest.fixture
def admin_tab(tab: Tab, ui_project: UiProject) -> Tab:
    """A tab signed in with the admin key (scopes read + admin)."""
    tab.sign_in(ui_project.admin_key)
    return tab
