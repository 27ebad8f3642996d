"""Alerts: log, webhook (JSON POST, retried), Slack-compatible payloads or a plugin, deduplicated.

An alert has a ``key`` (e.g. ``drift:visa-approval``): the same key is sent at most once per
cooldown, so a drift that persists for hours does not page anyone every minute. Sends and
suppressions are audit events (``alert.sent``, ``alert.suppressed``), which is also where the
cooldown is read from, so it holds across processes and restarts.

Channels are found by ``type`` in the :data:`conveyor._plugins.ALERTS` registry: the built-ins
below, or a factory another package registers in the entry point group ``conveyor.alerts``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from conveyor import _plugins
from conveyor._secrets import host_only

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.config import AlertConfig
    from conveyor.store.metadata import AuditLog

log = logging.getLogger("conveyor.monitoring")


@dataclass(frozen=True)
class Alert:
    """Something a person should look at."""

    key: str  # deduplication key
    kind: str  # column | dataset | prediction | performance | retrain | serving
    title: str
    message: str
    model: str
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The JSON a webhook receives."""
        return {
            "source": "conveyor",
            "key": self.key,
            "kind": self.kind,
            "title": self.title,
            "message": self.message,
            "model": self.model,
            "details": self.details,
        }

    def slack_payload(self) -> dict[str, Any]:
        """An incoming-webhook message for Slack (and compatibles: Mattermost, Rocket.Chat)."""
        return {
            "text": f"{self.title}: {self.message}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": self.message[:3000]}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"model `{self.model}` · conveyor"}],
                },
            ],
        }


class Channel(Protocol):
    """Where alerts go.

    A plugin (entry point group ``conveyor.alerts``) is a callable, usually the channel class,
    taking the channel's :class:`~conveyor.config.AlertConfig` (its own settings are in
    ``config.options``) and returning a channel; a setting it cannot use raises ``ValueError``.
    Its ``on`` is taken from the config when it has none.
    """

    name: str
    on: str

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise on failure (after any retries)."""


class ChannelSettingError(ValueError):
    """A channel cannot be made from its config; ``key`` names the field (or "" for the
    section)."""

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class LogChannel:
    """A WARNING on the ``conveyor.monitoring`` logger."""

    name = "log"

    def __init__(self, on: str = "any") -> None:
        self.on = on

    @classmethod
    def from_config(cls, config: AlertConfig) -> LogChannel:
        """The channel for a ``type: log`` entry of ``monitoring.alerts``."""
        return cls(on=config.on)

    def send(self, alert: Alert) -> None:
        log.warning("ALERT %s: %s", alert.title, alert.message)


class WebhookChannel:
    """JSON POST to a URL, with a timeout and retries (exponential backoff) on connection
    errors and 5xx answers; a 4xx is not retried."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        on: str = "any",
        backoff: float = 0.5,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.on = on
        self.backoff = backoff

    @classmethod
    def from_config(cls, config: AlertConfig) -> WebhookChannel:
        """The channel for an entry of ``monitoring.alerts``; ``url`` may use ``${VAR}``.

        Raises:
            ChannelSettingError: no url, or an unset variable in it.
        """
        import os
        import string

        if not config.url:
            raise ChannelSettingError(f"{config.type} needs a url")
        try:
            url = string.Template(config.url).substitute(os.environ)
        except KeyError as exc:
            raise ChannelSettingError(f"${{{exc.args[0]}}} is not set", key="url") from None
        return cls(url, timeout=config.timeout, retries=config.retries, on=config.on)

    def body(self, alert: Alert) -> dict[str, Any]:
        """What to POST."""
        return alert.payload()

    def send(self, alert: Alert) -> None:
        import httpx

        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = httpx.post(self.url, json=self.body(alert), timeout=self.timeout)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                return
            last = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break
        raise AlertError(
            f"{self.name} {host_only(self.url)}: {last} after {attempt + 1} attempt(s)"
        )


class SlackChannel(WebhookChannel):
    """A Slack incoming webhook."""

    name = "slack"

    def body(self, alert: Alert) -> dict[str, Any]:
        return alert.slack_payload()


class AlertError(RuntimeError):
    """A channel could not deliver an alert."""


def channels_from_config(configs: list[AlertConfig]) -> list[Channel]:
    """Channels from ``monitoring.alerts``; URLs may use ``${VAR}`` from the environment.

    Raises:
        ConfigError: an unknown or broken channel type, a webhook or slack channel without a
            URL, an unset variable, or a setting a plugin channel refuses.
    """
    from conveyor.errors import ConfigError

    made: list[Channel] = []
    for i, cfg in enumerate(configs):
        factory = _plugins.load(_plugins.ALERTS, cfg.type, _channel_factory)
        try:
            channel = factory(cfg)
        except ValueError as exc:  # ChannelSettingError, or a plugin's own ValueError
            key = _key(exc)
            where = f"monitoring.alerts[{i}]" + (f".{key}" if key else "")
            raise ConfigError(f"conveyor.yaml: {where}: {exc}") from None
        if cfg.type not in _plugins.ALERTS.builtins:
            channel = _PluginChannel(channel, cfg)
        made.append(channel)
    return made


def _key(exc: ValueError) -> str:
    return exc.key if isinstance(exc, ChannelSettingError) else ""


def _channel_factory(obj: Any) -> Callable[[AlertConfig], Channel]:
    """What a ``conveyor.alerts`` entry point names -> a factory of channels."""
    if not callable(obj):
        raise TypeError(f"{type(obj).__name__} is not callable")
    factory: Callable[[AlertConfig], Channel] = obj
    return factory


class _PluginChannel:
    """A plugin's channel: must have ``send``; whatever it raises, or ``send`` returning False,
    is an :class:`AlertError`, so one broken channel does not stop the others."""

    def __init__(self, channel: Any, config: AlertConfig) -> None:
        from conveyor.errors import ConfigError

        if not callable(getattr(channel, "send", None)):
            raise ConfigError(
                f"conveyor.yaml: monitoring.alerts: the {config.type} alert channel plugin made "
                f"{type(channel).__name__}, which has no send(alert) method"
            )
        self._channel = channel
        self.name = str(getattr(channel, "name", None) or config.type)
        self.on = str(getattr(channel, "on", None) or config.on)

    def send(self, alert: Alert) -> None:
        try:
            delivered = self._channel.send(alert)
        except AlertError:
            raise
        except Exception as exc:  # a plugin may raise anything
            raise AlertError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if delivered is False:
            raise AlertError(f"{self.name}: not delivered")


def dispatch(
    alert: Alert,
    channels: list[Channel],
    metadata: AuditLog,
    *,
    cooldown_seconds: float,
) -> list[str]:
    """Send ``alert`` to the channels that want its kind, unless the same key was sent within
    the cooldown. Returns the channels that delivered it (empty when suppressed).

    A failing channel does not stop the others; failures are logged and recorded.
    """
    wanted = [c for c in channels if c.on in ("any", alert.kind)]
    if not wanted:
        return []
    since = time.time() - cooldown_seconds
    recent = [
        e
        for e in metadata.list_events(since=since, entity=alert.model, action="alert.sent")
        if e.details.get("key") == alert.key
    ]
    if recent:
        metadata.append_event(
            "alert.suppressed",
            alert.model,
            reason=f"cooldown: {alert.title}",
            details={"key": alert.key, "last_sent": recent[-1].at},
        )
        return []
    sent, failed = [], {}
    for channel in wanted:
        try:
            channel.send(alert)
            sent.append(channel.name)
        except AlertError as exc:
            failed[channel.name] = str(exc)
            log.error("alert not delivered: %s", exc)
    metadata.append_event(
        "alert.sent",
        alert.model,
        reason=alert.title,
        details={
            "key": alert.key,
            "kind": alert.kind,
            "sent": sent,
            "failed": failed,
            "message": alert.message,
        },
    )
    return sent
