"""The audit page and its CSV/JSON exports over a real SQLite store, through HTTP against a real
uvicorn on loopback: filters, pages, and exports a spreadsheet cannot be tricked by."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from conveyor.serving.background import BackgroundServer
from conveyor.store.artifacts.memory import InMemoryArtifactStore
from conveyor.store.metadata import open_metadata_store
from conveyor.ui.app import UiState, create_app
from conveyor.ui.pages.audit import PAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conveyor.store.metadata import SqlMetadataStore

NASTY = [
    '=HYPERLINK("http://evil","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTAB",
    "fine, with a comma",
    'with "quotes"',
    "two\nlines",
]


@dataclass
class Audit:
    metadata: SqlMetadataStore
    client: httpx.Client


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Audit]:
    """A store with events by two actors (the actor comes from $CONVEYOR_ACTOR, as for the
    CLI), and the UI over it (--no-auth)."""
    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.setenv("CONVEYOR_ACTOR", "alice")
    for i in range(1, 4):
        metadata.append_event("register", f"churn:{i}", reason=f"trained run {i}")
    metadata.append_event(
        "promote", "churn:3", reason="best so far", details={"alias": "production"}
    )
    monkeypatch.setenv("CONVEYOR_ACTOR", "ui:bob")
    metadata.append_event("rollback", "churn:2", reason="errors", details={"alias": "production"})
    metadata.append_event("monitor.check", "fraud:1", reason="no drift (600 rows)")
    state = UiState(metadata, InMemoryArtifactStore(), "demo", auth=False, secret=b"a" * 32)
    try:
        with (
            BackgroundServer(create_app(state)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            yield Audit(metadata, client)
    finally:
        metadata.close()


def rows(page: httpx.Response) -> list[list[str]]:
    """The audit table's rows as cell texts."""
    body = page.text.split("<tbody>")[1].split("</tbody>")[0]
    return [
        [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in cells]
        for cells in (re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S) for tr in body.split("</tr>"))
        if cells
    ]


def test_the_log_is_newest_first_with_who_what_which_and_why(audit: Audit) -> None:
    page = audit.client.get("/audit")
    assert page.status_code == 200
    found = rows(page)
    assert [r[2] for r in found] == [
        "monitor.check", "rollback", "promote", "register", "register", "register",
    ]  # fmt: skip
    assert found[1][1:5] == ["ui:bob", "rollback", "churn:2 ↗", "errors"]
    assert '"alias": "production"' in found[1][5]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"entity": "churn"}, 5),  # a model: every version's events
        ({"entity": "churn:3"}, 2),
        ({"action": "register"}, 3),
        ({"actor": "ui:bob"}, 2),
        ({"actor": "ui:*"}, 2),
        ({"actor": "alice", "action": "promote"}, 1),
        ({"entity": "fraud", "actor": "alice"}, 0),
    ],
)
def test_filters_keep_only_matching_events(
    audit: Audit, query: dict[str, str], expected: int
) -> None:
    page = audit.client.get("/audit", params=query)
    assert page.status_code == 200
    if expected:
        assert len(rows(page)) == expected
    else:
        assert "No event matches these filters" in page.text
    exported = audit.client.get("/audit.json", params=query).json()
    assert len(exported) == expected  # the exports apply the same filters


def test_since_keeps_later_events_and_a_bad_date_names_the_field(audit: Audit) -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    today = dt.date.today().isoformat()
    assert "No event matches" in audit.client.get("/audit", params={"since": tomorrow}).text
    assert len(rows(audit.client.get("/audit", params={"since": today}))) == 6
    for path in ("/audit", "/audit.csv", "/audit.json"):
        bad = audit.client.get(path, params={"since": "last tuesday"})
        assert bad.status_code == 400
        assert "&#39;since&#39;: &#39;last tuesday&#39; is not a date" in bad.text


def test_pages_of_fifty_with_links_that_keep_the_filters(audit: Audit) -> None:
    for i in range(PAGE_SIZE + 20):
        audit.metadata.append_event("monitor.check", "fraud:1", reason=f"check {i}")
    first = audit.client.get("/audit", params={"action": "monitor.check"})
    older = re.search(r'href="(/audit\?[^"]*page=2[^"]*)"', first.text)
    assert older, "no link to the next page"
    second = audit.client.get(html.unescape(older.group(1)))
    assert len(rows(first)) == PAGE_SIZE
    assert rows(first)[0][4] == f"check {PAGE_SIZE + 19}"
    assert len(rows(second)) == 21  # 20 more checks + the fixture's one
    assert rows(second)[-1][4] == "no drift (600 rows)"
    assert "page=3" not in second.text and "action=monitor.check" in second.text


def test_csv_export_quotes_properly_and_defuses_formulas(audit: Audit) -> None:
    for reason in NASTY:
        audit.metadata.append_event("approve", "churn:9", reason=reason)
    response = audit.client.get("/audit.csv", params={"entity": "churn:9"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="audit.csv"'
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["reason"] for r in table] == [
        '\'=HYPERLINK("http://evil","click")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1:A2)",
        "'\tTAB",
        "fine, with a comma",
        'with "quotes"',
        "two\nlines",
    ]
    assert all(r["actor"] == "ui:bob" and r["entity"] == "churn:9" for r in table)
    assert json.loads(table[0]["details"]) == {}


def test_json_export_is_oldest_first_with_iso_times_and_details(audit: Audit) -> None:
    response = audit.client.get("/audit.json", params={"entity": "churn"})
    events = response.json()
    assert response.headers["content-disposition"] == 'attachment; filename="audit.json"'
    assert [e["action"] for e in events] == [
        "register", "register", "register", "promote", "rollback",
    ]  # fmt: skip
    assert events[-1]["details"] == {"alias": "production"}
    assert events[-1]["actor"] == "ui:bob"
    assert dt.datetime.fromisoformat(events[0]["at"]).tzinfo is not None


def test_the_page_offers_the_exports_with_the_current_filters(audit: Audit) -> None:
    page = audit.client.get("/audit", params={"actor": "ui:bob", "entity": "churn"})
    assert 'href="/audit.csv?entity=churn&amp;actor=ui%3Abob"' in page.text
    assert 'href="/audit.json?entity=churn&amp;actor=ui%3Abob"' in page.text
    empty = audit.client.get("/audit", params={"actor": "nobody"})
    assert "No event matches these filters" in empty.text
