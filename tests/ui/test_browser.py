"""Every page of ``conveyor ui`` in a real browser: it loads, asks nothing of another origin,
logs no error, and shows what it is for; compare shows the differing parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.ui.conftest import MODEL

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.ui.conftest import Tab, UiProject

pytestmark = pytest.mark.slow  # a trained project and a browser: seconds each

PAGES: dict[str, Callable[[UiProject], str]] = {
    "runs": lambda p: "/runs",
    "run": lambda p: f"/runs/{p.first_run}",
    "compare": lambda p: f"/compare?run={p.first_run}&run={p.second_run}",
    "models": lambda p: "/models",
    "lineage": lambda p: f"/lineage?model={MODEL}:1",
    "monitoring": lambda p: f"/monitoring?model={MODEL}",
    "audit": lambda p: "/audit",
}
README_SHOTS = {"runs": "runs", "run": "run", "models": "models", "lineage": "lineage"}
"""The pages whose screenshots the README shows (under docs/ui/)."""
SERVER_FAILURE = ("Traceback", "Internal Server Error")


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_cleanly(name: str, admin_tab: Tab, ui_project: UiProject) -> None:
    response = admin_tab.goto(PAGES[name](ui_project))
    assert response is not None and response.status == 200, admin_tab.page.inner_text("body")
    heading = admin_tab.page.locator("main h1").first
    assert heading.is_visible() and heading.inner_text().strip()
    body = admin_tab.page.inner_text("body")
    assert not any(failure in body for failure in SERVER_FAILURE), body
    admin_tab.screenshot(f"page-{name}", docs=README_SHOTS.get(name))
    admin_tab.assert_clean()


def test_a_signed_out_visitor_lands_on_the_signin_page(tab: Tab) -> None:
    tab.goto("/models")
    url = urlsplit(tab.page.url)
    assert url.path == "/signin"
    assert parse_qs(url.query)["next"] == ["/models"]
    assert tab.page.locator("input[name=key][type=password]").is_visible()
    assert tab.page.locator("header nav").count() == 0  # nothing to navigate to yet
    tab.screenshot("page-signin")
    tab.assert_clean()


def test_a_wrong_key_is_refused_on_the_signin_page(tab: Tab) -> None:
    tab.allow_error("401")  # the browser notes the refused sign-in's status in its console
    tab.goto("/signin")
    tab.page.fill("input[name=key]", "cvk_not-a-key")
    with tab.page.expect_navigation():
        tab.page.click("form[action='/signin'] button[type=submit]")
    assert urlsplit(tab.page.url).path == "/signin"
    assert "not valid" in tab.page.inner_text("main")
    assert tab.page.context.cookies() == []


def test_signing_in_goes_where_the_visitor_was_headed(tab: Tab, ui_project: UiProject) -> None:
    tab.goto(f"/runs/{ui_project.second_run}")
    tab.page.fill("input[name=key]", ui_project.reader_key)
    with tab.page.expect_navigation():
        tab.page.click("form[action='/signin'] button[type=submit]")
    assert urlsplit(tab.page.url).path == f"/runs/{ui_project.second_run}"
    [cookie] = tab.page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert ui_project.reader_key not in cookie["value"]


def test_compare_shows_the_differing_params(admin_tab: Tab, ui_project: UiProject) -> None:
    """The two runs were trained with ``training.tuning.trials`` 3 and 2 (and another alias)."""
    admin_tab.goto(PAGES["compare"](ui_project))
    page = admin_tab.page
    row = page.locator("tr", has_text="training.tuning.trials").first
    assert row.is_visible(), page.inner_text("main")
    cells = [c.strip() for c in row.locator("td, th").all_inner_texts()]
    assert cells[1:3] == ["3", "2"], cells  # in the order the runs were asked for
    alias = page.locator("tr", has_text="registry.promote.alias").first
    assert "production" in alias.inner_text() and "staging" in alias.inner_text()
    assert page.locator("tr", has_text="test.f1").count() >= 1  # metrics side by side too
    admin_tab.assert_clean()


def test_the_guard_fails_a_page_that_reaches_for_another_origin(admin_tab: Tab) -> None:
    """What the other tests rely on: a page that tries to load something from another origin
    is refused by the Content-Security-Policy, and the tab fails the test for both the request
    and the console error the refusal logs."""
    admin_tab.goto("/runs")
    admin_tab.page.evaluate(
        "() => { const img = new Image(); img.src = 'http://127.0.0.2:9/x.png';"
        " document.body.append(img); }"
    )
    admin_tab.page.wait_for_timeout(300)
    assert admin_tab.foreign_requests() == ["http://127.0.0.2:9/x.png"]
    refused = [e for e in admin_tab.unexpected_errors() if "Content Security Policy" in e]
    assert refused and "127.0.0.2" in refused[0], admin_tab.errors
    with pytest.raises(AssertionError, match="console errors"):
        admin_tab.assert_clean()  # reported once: the fixture's final check passes
