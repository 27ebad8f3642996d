"""Governed actions in a real browser: a promote moves the alias, writes the audit event with
the reason and the signed-in actor, and a running model server swaps to the new version; a key
without ``admin`` and a POST without the session's CSRF token are refused."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.ui.conftest import ADMIN, MODEL, running_serve, running_ui

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.ui.conftest import Server, Tab, UiProject

pytestmark = pytest.mark.slow

REASON = "staging looked good for a week"
SWAP_TIMEOUT = 30.0  # seconds: the server polls its alias every second


def _production(project: Path) -> int:
    from conveyor.project import Project

    with Project.load(project) as proj:
        return proj.metadata.get_alias(MODEL, "production")


def _events(project: Path) -> list[Any]:
    from conveyor.project import Project

    with Project.load(project) as proj:
        return proj.metadata.list_events(entity=MODEL)


def promote_form(tab: Tab, version: int) -> Any:
    """The form that promotes ``MODEL:version``, found as a user finds it: the models page
    links each version to its own page, which holds the actions."""
    page = tab.page
    tab.goto("/models")
    with page.expect_navigation():
        page.click(f"a[href='/models/{MODEL}/{version}']")
    form = page.locator(f"form[method=post][action='/models/{MODEL}/{version}/promote']")
    assert form.count() == 1, f"no promote form for {MODEL}:{version} on {page.url}"
    return form


def form_fields(form: Any) -> tuple[str, dict[str, str]]:
    """A form's absolute action URL and its fields' current values."""
    action: str = form.evaluate("f => f.action")
    fields: dict[str, str] = form.evaluate(
        "f => Object.fromEntries(Array.from(new FormData(f).entries()))"
    )
    return action, fields


def test_promote_through_the_ui_moves_the_alias_audits_it_and_swaps_the_server(
    own_project: UiProject, server_logs: Path, open_tab: Callable[[Server], Tab]
) -> None:
    root = own_project.root
    assert _production(root) == 1
    with running_serve(root, server_logs) as model_server, running_ui(root, server_logs) as ui:
        assert httpx.get(model_server.origin + "/ready").json()["version"] == 1
        tab = open_tab(ui)
        tab.sign_in(own_project.admin_key)
        form = promote_form(tab, 2)
        form.locator("[name=reason]").fill(REASON)
        form.locator("[name=alias]").fill("production")
        tab.screenshot("action-promote-filled")
        with tab.page.expect_navigation():
            form.locator("button[type=submit]").click()
        done = urlsplit(tab.page.url)
        assert done.path == f"/models/{MODEL}/2", tab.page.inner_text("main")
        notice = tab.page.locator("main", has_text="Done: promote").inner_text()
        assert "@production" in notice and f"ui:{ADMIN}" in notice
        tab.screenshot("action-promote-done")

        assert _production(root) == 2
        promoted = [e for e in _events(root) if e.action == "promote"][-1]
        assert promoted.reason == REASON
        assert promoted.actor == f"ui:{ADMIN}"
        assert promoted.entity.startswith(f"{MODEL}")

        served = _wait_for_version(model_server, 2)
        assert served == 2, model_server.output()

        tab.goto("/audit")
        row = tab.page.locator("tr", has_text=REASON).first
        assert row.is_visible() and f"ui:{ADMIN}" in row.inner_text()
        tab.screenshot("action-promote-audit")


def _wait_for_version(server: Server, version: int) -> int:
    """The version the model server's /ready reports, once it is ``version`` (or at timeout)."""
    deadline = time.monotonic() + SWAP_TIMEOUT
    while True:
        served: int = httpx.get(server.origin + "/ready").json()["version"]
        if served == version or time.monotonic() > deadline:
            return served
        time.sleep(0.2)


def test_a_key_without_admin_cannot_promote(
    tab: Tab, open_tab: Callable[[Server], Tab], ui_server: Server, ui_project: UiProject
) -> None:
    # what the admin's form posts...
    admin = open_tab(ui_server)
    admin.sign_in(ui_project.admin_key)
    action, fields = form_fields(promote_form(admin, 2))
    # ...a reader does not see, and cannot post, even with a valid session of its own
    tab.sign_in(ui_project.reader_key)
    tab.goto(f"/models/{MODEL}/2")
    assert tab.page.locator("form[method=post][action*=promote]").count() == 0
    tab.allow_error("403")  # the browser notes the refused POST's status in its console
    before = len(_events(ui_project.root))
    response = tab.page.request.post(
        action, form={**fields, "reason": "no admin"}, headers={"Origin": tab.origin}
    )
    assert response.status == 403
    assert "admin" in response.text()
    assert _production(ui_project.root) == 1
    assert len(_events(ui_project.root)) == before


@pytest.mark.parametrize(
    ("change", "refused_for"),
    [
        ({"csrf": None}, "CSRF"),
        ({"csrf": "forged-token"}, "CSRF"),
        ({"origin": "http://evil.example"}, "cross-origin"),
    ],
    ids=["no-token", "wrong-token", "other-origin"],
)
def test_a_forged_post_is_refused(
    change: dict[str, str | None], refused_for: str, admin_tab: Tab, ui_project: UiProject
) -> None:
    """The admin's own session cookie, but a POST the page did not make."""
    action, fields = form_fields(promote_form(admin_tab, 2))
    assert fields.get("csrf"), "the promote form carries no CSRF token"
    fields["reason"] = "forged"
    if "csrf" in change:
        fields.pop("csrf")
        if change["csrf"] is not None:
            fields["csrf"] = change["csrf"]
    origin = change.get("origin") or admin_tab.origin
    before = len(_events(ui_project.root))
    response = admin_tab.page.request.post(action, form=fields, headers={"Origin": origin})
    assert response.status == 403
    assert refused_for in response.text()
    assert _production(ui_project.root) == 1
    assert len(_events(ui_project.root)) == before
