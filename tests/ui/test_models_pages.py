"""The models, lineage and monitoring pages over a trained visa project, through HTTP against a
real uvicorn on loopback: what each page shows, the governed actions (the registry's functions,
the signed-in actor in the audit log, refusals in words), and who may act."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httpx

from conveyor.contracts import ModelStatus
from conveyor.project import Project
from conveyor.registry import governance
from conveyor.serving.background import BackgroundServer
from conveyor.ui.app import UiState, create_app
from tests.ui.conftest import MODEL

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.ui.conftest import UiProject

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HREF = re.compile(r'href="([^"]+)"')


@contextmanager
def ui(project: Project, *, auth: bool = False) -> Iterator[httpx.Client]:
    """The UI over ``project``'s stores in uvicorn on a free loopback port, and a client."""
    state = UiState(
        project.metadata, project.artifacts, project.config.project, auth=auth, secret=b"k" * 32
    )
    with (
        BackgroundServer(create_app(state)) as server,
        httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as client,
    ):
        yield client


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, "no CSRF field on the page"
    return found.group(1)


def links(page: httpx.Response) -> list[str]:
    """The page's link targets, decoded (``%3A`` -> ``:``)."""
    return [unquote(html.unescape(h)) for h in HREF.findall(page.text)]


def text(page: httpx.Response) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def add_candidate(project: Project) -> int:
    """Register a candidate version (v1's model, awaiting a person's decision) the way the
    train line registers one; its version number."""
    v1 = project.metadata.get_model_version(MODEL, 1)
    record = governance.register(
        project.metadata,
        MODEL,
        digest=v1.digest,
        run_id=v1.run_id,
        status=ModelStatus.CANDIDATE,
        reason="needs a person's approval",
        dataset=v1.dataset,
        metrics=v1.metrics,
        tags=v1.tags,
    )
    return record.version


# --- reading ------------------------------------------------------------------------------------


def test_models_page_lists_versions_with_status_metrics_decision_data_run_and_aliases(
    ui_project: UiProject,
) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        page = client.get("/models")
        v1 = project.metadata.get_model_version(MODEL, 1)
    assert page.status_code == 200
    assert 'href="/static/models.css"' in page.text
    shown = text(page)
    assert "@production → v1" in shown
    assert '<span class="status s-approved">approved</span>' in page.text
    assert f"{v1.metrics['f1']:.4g}" in shown
    assert v1.reason and v1.reason in shown
    hrefs = links(page)
    assert f"/runs/{ui_project.first_run}" in hrefs and f"/runs/{ui_project.second_run}" in hrefs
    assert f"/lineage?dataset={v1.dataset}" in hrefs
    assert f"/models/{MODEL}/1" in hrefs and f"/models/{MODEL}/2" in hrefs


def test_model_page_draws_alias_history_as_a_timeline_and_each_versions_gates(
    ui_project: UiProject,
) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        page = client.get(f"/models/{MODEL}")
        history = project.metadata.alias_history(MODEL)
    assert page.status_code == 200
    timeline = page.text.split('<ol class="timeline">')[1].split("</ol>")[0]
    assert timeline.count("<li") == len(history) >= 1
    first = history[0]
    assert f'by <span class="actor">{first["actor"]}</span>' in timeline
    assert html.escape(first["reason"], quote=False) in timeline
    assert 'class="gate pass"' in page.text  # the visa gates: f1 and roc_auc floors
    assert "Roll back @production" in page.text  # --no-auth: a session with admin


def test_version_page_shows_gates_decision_candidates_and_history(ui_project: UiProject) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        page = client.get(f"/models/{MODEL}/1")
    assert page.status_code == 200
    shown = text(page)
    for heading in ("Metrics", "Gates", "Decision", "Candidates of its run", "History"):
        assert heading in shown
    assert "★ chosen" in shown
    assert "no current champion" in shown  # v1's decision
    assert "register" in shown and "promote" in shown
    forms = re.findall(r'<form[^>]*method="post" action="/models/.*?</form>', page.text, re.S)
    assert forms, "no action form for an admin session"
    for form in forms:
        assert 'name="csrf"' in form and 'name="reason"' in form and " required" in form


def test_unknown_model_or_version_is_a_404_page_naming_it(ui_project: UiProject) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        assert client.get("/models/nope").status_code == 404
        missing = client.get(f"/models/{MODEL}/99")
    assert missing.status_code == 404
    assert f"{MODEL}:99" in text(missing)


# --- actions ------------------------------------------------------------------------------------


def test_approve_and_promote_go_through_governance_as_the_signed_in_user(
    own_project: UiProject,
) -> None:
    with Project.load(own_project.root) as project, ui(project) as client:
        version = add_candidate(project)
        token = csrf_of(client.get(f"/models/{MODEL}/{version}"))
        approved = client.post(
            f"/models/{MODEL}/{version}/approve",
            data={"csrf": token, "alias": "", "reason": "reviewed the report with the team"},
        )
        assert approved.status_code == 303
        after = client.get(approved.headers["location"])
        assert f"Done: approve of {MODEL}:{version} by ui:local" in text(after)

        promoted = client.post(
            f"/models/{MODEL}/{version}/promote",
            data={"csrf": token, "alias": "production", "reason": "ship it: better on Asia"},
        )
        assert promoted.status_code == 303
        assert project.metadata.get_alias(MODEL, "production") == version
        events = project.metadata.list_events(entity=f"{MODEL}:{version}")
        moves = project.metadata.alias_history(MODEL, "production")
    assert project.metadata.get_model_version(MODEL, version).status == "approved"
    assert [(e.action, e.actor, e.reason) for e in events[-2:]] == [
        ("approve", "ui:local", "reviewed the report with the team"),
        ("promote", "ui:local", "ship it: better on Asia"),
    ]
    assert (moves[-1]["actor"], moves[-1]["version"]) == ("ui:local", version)


def test_rollback_moves_the_alias_back_and_names_the_actor(own_project: UiProject) -> None:
    with Project.load(own_project.root) as project, ui(project) as client:
        version = add_candidate(project)
        token = csrf_of(client.get(f"/models/{MODEL}"))
        client.post(
            f"/models/{MODEL}/{version}/approve",
            data={"csrf": token, "alias": "production", "reason": "approve and ship"},
        )
        assert project.metadata.get_alias(MODEL, "production") == version
        back = client.post(
            f"/models/{MODEL}/rollback",
            data={"csrf": token, "alias": "production", "to": "", "reason": "errors in prod"},
        )
        assert back.status_code == 303
        assert back.headers["location"].startswith(f"/models/{MODEL}?done=")
        page = client.get(back.headers["location"])
        assert project.metadata.get_alias(MODEL, "production") == 1
        last = project.metadata.list_events(action="rollback", last=1)[-1]
    assert "Done: rollback" in text(page)
    assert (last.actor, last.reason, last.entity) == ("ui:local", "errors in prod", f"{MODEL}:1")


def test_refused_transitions_show_the_registrys_message_and_change_nothing(
    own_project: UiProject,
) -> None:
    with Project.load(own_project.root) as project, ui(project) as client:
        token = csrf_of(client.get(f"/models/{MODEL}/1"))
        before = len(project.metadata.list_events())
        archive = client.post(f"/models/{MODEL}/1/archive", data={"csrf": token, "reason": "old"})
        again = client.post(
            f"/models/{MODEL}/1/approve", data={"csrf": token, "alias": "", "reason": "again"}
        )
        unreasoned = client.post(f"/models/{MODEL}/1/archive", data={"csrf": token, "reason": " "})
        bad_to = client.post(
            f"/models/{MODEL}/rollback",
            data={"csrf": token, "alias": "production", "to": "two", "reason": "x"},
        )
        missing = client.post(f"/models/{MODEL}/99/archive", data={"csrf": token, "reason": "x"})
        status = project.metadata.get_model_version(MODEL, 1).status
        after = len(project.metadata.list_events())
    assert archive.status_code == 409
    assert f"{MODEL}:1 is {MODEL}@production; move the alias first" in text(archive)
    assert again.status_code == 409 and f"{MODEL}:1 is already approved" in text(again)
    assert unreasoned.status_code == 400 and "needs a reason" in text(unreasoned)
    assert bad_to.status_code == 400 and "'to': 'two' is not a version number" in text(bad_to)
    assert missing.status_code == 404 and f"{MODEL}:99" in text(missing)
    assert (status, after) == ("approved", before)


def test_a_post_without_the_csrf_token_is_refused(own_project: UiProject) -> None:
    with Project.load(own_project.root) as project, ui(project) as client:
        version = add_candidate(project)
        forged = client.post(f"/models/{MODEL}/{version}/approve", data={"reason": "sneaky"})
        status = project.metadata.get_model_version(MODEL, version).status
    assert forged.status_code == 403
    assert status == "candidate"


def test_a_read_only_key_sees_no_buttons_and_cannot_act(own_project: UiProject) -> None:
    with (
        Project.load(own_project.root) as project,
        ui(project, auth=True) as reader,
        httpx.Client(base_url=str(reader.base_url), follow_redirects=False) as admin,
    ):
        version = add_candidate(project)
        for client, key in ((reader, own_project.reader_key), (admin, own_project.admin_key)):
            assert client.post("/signin", data={"key": key, "next": "/models"}).status_code == 303
        read_view = reader.get(f"/models/{MODEL}/{version}")
        admin_view = admin.get(f"/models/{MODEL}/{version}")
        refused = reader.post(
            f"/models/{MODEL}/{version}/approve",
            data={"csrf": csrf_of(read_view), "alias": "", "reason": "I may not"},
        )
        done = admin.post(
            f"/models/{MODEL}/{version}/approve",
            data={"csrf": csrf_of(admin_view), "alias": "", "reason": "I may"},
        )
        last = project.metadata.list_events(action="approve", last=1)[-1]
    assert read_view.status_code == 200 and 'method="post" action="/models/' not in read_view.text
    assert 'action="/models/' in admin_view.text
    assert refused.status_code == 403
    assert done.status_code == 303
    assert (last.actor, last.reason) == ("ui:ui-admin", "I may")


# --- lineage ------------------------------------------------------------------------------------


def test_lineage_goes_from_a_version_back_to_its_data_and_from_the_data_forward(
    ui_project: UiProject,
) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        v1 = project.metadata.get_model_version(MODEL, 1)
        assert v1.dataset is not None
        back = client.get(f"/lineage?model={MODEL}:1")
        to_data = next(h for h in links(back) if h.startswith("/lineage?dataset="))
        forward = client.get(to_data)
        by_alias = client.get(f"/lineage?model={MODEL}@production")
    assert back.status_code == 200
    shown = text(back)
    for stage in ("Dataset version", "Run", "Candidates", "Model version", "Aliases", "Serving"):
        assert stage.upper() in shown.upper()
    assert f"/runs/{ui_project.first_run}" in links(back)
    assert "★ logreg" in shown or "★ hgb" in shown or "★ lightgbm" in shown
    assert to_data == f"/lineage?dataset={v1.dataset}"
    assert forward.status_code == 200
    assert f"/lineage?model={MODEL}:1" in links(forward)  # and back again
    assert f"/runs/{ui_project.first_run}" in links(forward)
    assert by_alias.status_code == 200 and f"Lineage of {MODEL}:1" in text(by_alias)


def test_lineage_index_and_bad_queries(ui_project: UiProject) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        index = client.get("/lineage")
        unknown = client.get("/lineage?dataset=ffffffff")
        both = client.get(f"/lineage?model={MODEL}:1&dataset=ab")
        datasets = project.metadata.list_datasets()
    assert index.status_code == 200
    assert all(f"/lineage?dataset={d.fingerprint}" in links(index) for d in datasets)
    assert unknown.status_code == 404 and "no dataset version match 'ffffffff'" in text(unknown)
    assert both.status_code == 400


# --- monitoring ---------------------------------------------------------------------------------


def test_monitoring_grid_marks_drifted_columns_and_links_each_checks_report(
    ui_project: UiProject,
) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        page = client.get(f"/monitoring?model={MODEL}")
        checks = project.metadata.list_events(entity=MODEL, action="monitor.check")
        reports = sorted({h for h in links(page) if h.startswith("/monitoring/check?")})
        report = client.get(reports[-1])
        download = next(h for h in links(report) if h.startswith("/monitoring/check.html"))
        original = client.get(download)
        alerts = project.metadata.list_events(entity=MODEL, action="alert.sent")
    assert page.status_code == 200
    grid = page.text.split('<table class="drift-grid">')[1].split("</table>")[0]
    assert grid.count('<th class="when"') == len(checks) == 2
    drifted = checks[-1].details["drifted_columns"]
    assert drifted, "the second check was of drifted traffic"
    row = grid.split(f"<th>{drifted[0]}</th>")[1].split("</tr>")[0]
    assert row.count('class="cell-ok"') == 1 and row.count('class="cell-drift"') == 1
    assert len(reports) == 2
    assert report.status_code == 200
    assert "Column by column" in text(report) and drifted[0] in text(report)
    assert original.headers["content-disposition"].startswith("attachment")
    assert original.content.startswith(b"<!doctype html>")
    if alerts:  # the visa example logs alerts; the section lists what was sent
        assert alerts[-1].reason and html.escape(alerts[-1].reason, quote=False) in page.text


def test_monitoring_shows_served_volume_by_version(own_project: UiProject) -> None:
    import pandas as pd

    from conveyor.store.metadata import ArtifactRef

    with Project.load(own_project.root) as project, ui(project) as client:
        before = {1: 0, 2: 0}
        for log in project.metadata.list_prediction_logs(MODEL):
            before[log.model_version] = before.get(log.model_version, 0) + log.n_rows
        for version, rows in ((1, 120), (1, 30), (2, 7)):
            stored = project.artifacts.put(pd.DataFrame({"prediction": ["Certified"] * rows}))
            project.metadata.record_prediction_log(
                MODEL,
                version,
                ArtifactRef("predictions", stored.digest, stored.kind, stored.size),
                n_rows=rows,
                first_at=1.7e9,
                last_at=1.7e9 + 60,
            )
        page = client.get(f"/monitoring?model={MODEL}")
        unknown = client.get("/monitoring?model=nope")
    table = text(page).split("Served predictions by version")[1]
    assert f"v1 {before[1] + 150:,} " in table
    assert f"v2 {before[2] + 7:,} " in table
    assert unknown.status_code == 404


def test_monitoring_of_a_model_never_checked_says_what_to_run(tmp_path: Path) -> None:
    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import ArtifactRef, open_metadata_store

    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    stored = artifacts.put({"a": "model"})
    metadata.record_artifacts([ArtifactRef("model", stored.digest, stored.kind, stored.size)])
    governance.register(
        metadata, "fresh", digest=stored.digest, run_id=None, status=ModelStatus.APPROVED,
        reason="by hand", alias="production",
    )  # fmt: skip
    state = UiState(metadata, artifacts, "fresh", auth=False, secret=b"k" * 32)
    try:
        with BackgroundServer(create_app(state)) as server:
            index = httpx.get(f"{server.url}/monitoring")
            page = httpx.get(f"{server.url}/monitoring?model=fresh")
            lineage = httpx.get(f"{server.url}/lineage?model=fresh:1")
            version = httpx.get(f"{server.url}/models/fresh/1")
    finally:
        metadata.close()
    assert index.status_code == 307 and index.headers["location"] == "/monitoring?model=fresh"
    shown = text(page)
    for empty in ("No drift check of fresh yet", "No alerts", "No retrain yet", "No logged"):
        assert empty in shown
    assert lineage.status_code == 200 and "no run recorded" in text(lineage)
    assert version.status_code == 200 and "No gate report was recorded" in text(version)


def test_check_report_of_an_unknown_digest_is_a_404(ui_project: UiProject) -> None:
    with Project.load(ui_project.root) as project, ui(project) as client:
        missing = client.get("/monitoring/check", params={"report": "0" * 64})
        bad = client.get("/monitoring/check.html", params={"digest": "../etc/passwd"})
    assert missing.status_code == 404
    assert bad.status_code == 400
