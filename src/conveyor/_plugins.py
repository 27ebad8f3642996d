"""Points of extension: executors, data sources, serializers and alert channels found by name.

Each kind of plugin has a :class:`PluginKind`: its built-ins are named here as
``module:attribute`` strings (imported on first use, so naming them costs nothing at startup),
and third-party plugins are Python entry points in the kind's group (``conveyor.sources``,
...), read from the installed distributions only when a name is not built in, or for listing.
What a plugin must implement is defined by the module that uses it (e.g. ``SourceProtocol`` in
:mod:`conveyor.data.sources`); this module only finds, imports and checks.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ALERTS",
    "EXECUTORS",
    "KINDS",
    "SERIALIZERS",
    "SOURCES",
    "PluginKind",
    "check_name",
    "is_known",
    "load",
    "names",
    "refresh",
    "unknown_message",
]

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class PluginKind:
    """One point of extension.

    Args:
        group: the entry point group third-party packages register in.
        what: what one plugin is, for messages ("data source").
        builtins: built-in names -> ``module:attribute`` of their implementation.
        contract: what an entry point must name, for messages.
    """

    group: str
    what: str
    builtins: Mapping[str, str]
    contract: str
    _loaded: dict[tuple[str, object], Any] = field(default_factory=dict, repr=False)


EXECUTORS = PluginKind(
    "conveyor.executors",
    "executor",
    {"local": "conveyor.project:local_executor", "dask": "conveyor.project:dask_executor"},
    "a callable taking conveyor.project.ExecutorSettings and returning a "
    "conveyor.runner.AbstractExecutor (e.g. an AbstractExecutor subclass)",
)
SOURCES = PluginKind(
    "conveyor.sources",
    "data source",
    {
        "csv": "conveyor.data.sources:CsvSource",
        "parquet": "conveyor.data.sources:ParquetSource",
        "sql": "conveyor.data.sources:SqlSource",
        "mongodb": "conveyor.data.sources:MongoSource",
    },
    "a class (made with no arguments) with load(source, base_dir) -> DataFrame and "
    "describe(source, base_dir) -> str (conveyor.data.sources.SourceProtocol)",
)
SERIALIZERS = PluginKind(
    "conveyor.serializers",
    "serializer",
    {
        "parquet": "conveyor.store.artifacts.serializers:ParquetSerializer",
        "json": "conveyor.store.artifacts.serializers:JsonSerializer",
        "png": "conveyor.store.artifacts.serializers:PngSerializer",
        "bytes": "conveyor.store.artifacts.serializers:BytesSerializer",
        "joblib": "conveyor.store.artifacts.serializers:JoblibSerializer",
    },
    "a class (made with no arguments) with handles(value) -> bool, dump(value) -> bytes and "
    "load(data) -> value (conveyor.store.artifacts.serializers.SerializerProtocol)",
)
ALERTS = PluginKind(
    "conveyor.alerts",
    "alert channel",
    {
        "log": "conveyor.monitoring.alerts:LogChannel.from_config",
        "webhook": "conveyor.monitoring.alerts:WebhookChannel.from_config",
        "slack": "conveyor.monitoring.alerts:SlackChannel.from_config",
    },
    "a callable taking the channel's AlertConfig and returning an object with name, on and "
    "send(alert) (conveyor.monitoring.alerts.Channel), e.g. a class",
)
KINDS = (EXECUTORS, SOURCES, SERIALIZERS, ALERTS)

_lock = threading.Lock()
_discovered: dict[str, dict[str, list[metadata.EntryPoint]]] = {}


def refresh() -> None:
    """Forget discovered entry points and loaded plugins (after installing a package)."""
    with _lock:
        _discovered.clear()
        for kind in KINDS:
            kind._loaded.clear()


def names(kind: PluginKind) -> list[str]:
    """Every name ``kind`` answers to: the built-ins, then installed plugins (sorted)."""
    extra = sorted(set(_entry_points(kind)) - set(kind.builtins))
    return [*kind.builtins, *extra]


def is_known(kind: PluginKind, name: str) -> bool:
    """Whether ``name`` is built in or registered by an installed package."""
    return name in kind.builtins or name in _entry_points(kind)


def unknown_message(kind: PluginKind, name: str) -> str:
    """Why ``name`` is not accepted: what is available, and how to add a plugin."""
    return (
        f"unknown {kind.what} {name!r}; available: {', '.join(names(kind))} (to add one, "
        f"install a package that registers it in the entry point group {kind.group!r})"
    )


def check_name(kind: PluginKind) -> Callable[[str], str]:
    """A pydantic ``AfterValidator`` function: the name must be known to ``kind``."""

    def _check(value: str) -> str:
        if not is_known(kind, value):
            raise ValueError(unknown_message(kind, value))
        return value

    return _check


def load(kind: PluginKind, name: str, adapt: Callable[[Any], T]) -> T:
    """The plugin ``name`` of ``kind``: imported and passed through ``adapt`` once per process.

    ``adapt`` turns what the entry point names into the plugin (e.g. instantiates a class) and
    raises ``TypeError`` when it is not the right kind of object.

    Raises:
        ConfigError: ``name`` is unknown (listing what is available), or the plugin fails to
            import or is not the right kind (naming the entry point and its distribution).
    """
    key = (name, adapt)
    if key not in kind._loaded:
        importer, origin = _resolve(kind, name)
        try:
            obj = importer()
        except Exception as exc:  # whatever a broken plugin raises while importing
            raise ConfigError(
                f"{kind.what} {name!r}: cannot load {origin}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            made = adapt(obj)
        except TypeError as exc:
            raise ConfigError(
                f"{kind.what} {name!r}: {origin} is not a {kind.what} ({exc}); it must name "
                f"{kind.contract}"
            ) from exc
        with _lock:
            kind._loaded[key] = made
    plugin: T = kind._loaded[key]
    return plugin


def _resolve(kind: PluginKind, name: str) -> tuple[Callable[[], Any], str]:
    """How to import ``name``, and a description of where it comes from for messages."""
    if name in kind.builtins:
        target = kind.builtins[name]
        return (lambda: _import(target)), f"built-in {target}"
    found = _entry_points(kind).get(name)
    if not found:
        raise ConfigError(unknown_message(kind, name))
    if len(found) > 1:
        raise ConfigError(
            f"{kind.what} {name!r} is registered by more than one package: "
            + "; ".join(_describe(ep) for ep in found)
            + " (uninstall all but one)"
        )
    return found[0].load, _describe(found[0])


def _describe(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"
    return f"entry point {ep.name} = {ep.value} (group {ep.group}, distribution {where})"


def _import(target: str) -> Any:
    module_name, _, attrs = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in filter(None, attrs.split(".")):
        obj = getattr(obj, attr)
    return obj


def _entry_points(kind: PluginKind) -> dict[str, list[metadata.EntryPoint]]:
    """Third-party entry points of ``kind`` by name, read once per process."""
    with _lock:
        if kind.group not in _discovered:
            by_name: dict[str, list[metadata.EntryPoint]] = {}
            seen: set[tuple[str, str]] = set()
            for ep in metadata.entry_points(group=kind.group):
                dist = ep.dist.name if ep.dist is not None else ""
                if (ep.name, dist) not in seen:  # the same dist seen twice on sys.path
                    seen.add((ep.name, dist))
                    by_name.setdefault(ep.name, []).append(ep)
            _discovered[kind.group] = by_name
        return _discovered[kind.group]
