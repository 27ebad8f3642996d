"""Alerts against a real HTTP receiver on loopback: payloads, retries, timeouts, cooldown."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.config import AlertConfig
from conveyor.errors import ConfigError
from conveyor.monitoring.alerts import (
    Alert,
    AlertError,
    LogChannel,
    SlackChannel,
    WebhookChannel,
    channels_from_config,
    dispatch,
)
from conveyor.store.metadata import open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator

ALERT = Alert("dataset:m", "dataset", "Dataset drift on m:1", "drift in a, b", "m", {"version": 1})


class Receiver:
    """A loopback HTTP server that records POSTed JSON and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.bodies: list[Any] = []
        self.statuses = list(statuses or [])
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/SECRET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_posts_the_alert_as_json(receiver: Receiver) -> None:
    WebhookChannel(receiver.url).send(ALERT)
    assert receiver.bodies == [ALERT.payload()]
    assert receiver.bodies[0]["details"] == {"version": 1}


def test_slack_payload_has_text_and_blocks(receiver: Receiver) -> None:
    SlackChannel(receiver.url).send(ALERT)
    body = receiver.bodies[0]
    assert body["text"] == "Dataset drift on m:1: drift in a, b"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]


def test_webhook_retries_5xx_then_succeeds() -> None:
    receiver = Receiver(statuses=[500, 503])
    try:
        WebhookChannel(receiver.url, retries=3, backoff=0.01).send(ALERT)
    finally:
        receiver.close()
    assert len(receiver.bodies) == 3


def test_webhook_gives_up_after_retries_and_hides_the_url_path() -> None:
    receiver = Receiver(statuses=[500] * 10)
    try:
        with pytest.raises(AlertError, match="HTTP 500 after 3 attempt") as err:
            WebhookChannel(receiver.url, retries=2, backoff=0.01).send(ALERT)
    finally:
        receiver.close()
    assert "SECRET" not in str(err.value)


def test_webhook_does_not_retry_a_4xx() -> None:
    receiver = Receiver(statuses=[404])
    try:
        with pytest.raises(AlertError, match="HTTP 404 after 1 attempt"):
            WebhookChannel(receiver.url, retries=3, backoff=0.01).send(ALERT)
    finally:
        receiver.close()


def test_webhook_times_out() -> None:
    receiver = Receiver(delay=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(AlertError, match="Timeout"):
            WebhookChannel(receiver.url, timeout=0.2, retries=0).send(ALERT)
        assert time.monotonic() - started < 0.9
    finally:
        receiver.close()


def test_dispatch_deduplicates_within_the_cooldown(receiver: Receiver) -> None:
    store = open_metadata_store("sqlite://")
    channels = [WebhookChannel(receiver.url), LogChannel()]
    assert dispatch(ALERT, channels, store, cooldown_seconds=3600) == ["webhook", "log"]
    assert dispatch(ALERT, channels, store, cooldown_seconds=3600) == []  # suppressed
    other = Alert("column:m:x", "column", "Drift on m:1", "drift in x", "m")
    assert dispatch(other, channels, store, cooldown_seconds=3600) == ["webhook", "log"]
    assert len(receiver.bodies) == 2
    actions = [e.action for e in store.list_events(entity="m")]
    assert actions == ["alert.sent", "alert.suppressed", "alert.sent"]
    assert dispatch(ALERT, channels, store, cooldown_seconds=0) == ["webhook", "log"]


def test_a_failing_channel_does_not_stop_the_others(receiver: Receiver) -> None:
    store = open_metadata_store("sqlite://")
    dead = WebhookChannel("http://127.0.0.1:9/nowhere", retries=0, timeout=0.5)
    sent = dispatch(ALERT, [dead, WebhookChannel(receiver.url)], store, cooldown_seconds=60)
    assert sent == ["webhook"] and len(receiver.bodies) == 1
    event = store.list_events(entity="m")[-1]
    assert event.details["failed"] and event.details["sent"] == ["webhook"]


def test_channels_from_config_expand_env_and_need_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK", "http://127.0.0.1:1/x")
    made = channels_from_config(
        [AlertConfig(type="log"), AlertConfig(type="slack", url="${HOOK}", on="dataset")]
    )
    assert [c.name for c in made] == ["log", "slack"] and made[1].on == "dataset"
    assert isinstance(made[1], SlackChannel) and made[1].url == "http://127.0.0.1:1/x"
    with pytest.raises(ConfigError, match=r"alerts\[0\]: webhook needs a url"):
        channels_from_config([AlertConfig(type="webhook")])
    with pytest.raises(ConfigError, match="NOT_SET"):
        channels_from_config([AlertConfig(type="webhook", url="${NOT_SET}")])


def test_builtin_channels_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK", "http://127.0.0.1:9/hook")
    made = channels_from_config(
        [
            AlertConfig(type="log", on="dataset"),
            AlertConfig(type="webhook", url="${HOOK}", retries=0),
            AlertConfig(type="slack", url="${HOOK}", timeout=1.5),
        ]
    )
    assert [type(c) for c in made] == [LogChannel, WebhookChannel, SlackChannel]
    assert [c.on for c in made] == ["dataset", "any", "any"]
    webhook, slack = made[1], made[2]
    assert isinstance(webhook, WebhookChannel) and isinstance(slack, SlackChannel)
    assert (webhook.url, webhook.retries, slack.timeout) == ("http://127.0.0.1:9/hook", 0, 1.5)
