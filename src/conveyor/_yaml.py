"""YAML read with the YAML 1.2 core schema's scalars: ``yes``, ``no``, ``on``, ``off``, ``y`` and
``n`` stay strings (PyYAML follows YAML 1.1, where they are booleans), so a class named ``yes`` or
a category ``no`` means what it says. Only ``true``/``false`` (any case) are booleans, and
``1:30`` and ``2024-01-01`` are strings, not YAML 1.1's base-60 integer and date."""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["YAMLError", "dump", "load"]

YAMLError = yaml.YAMLError


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and no sexagesimal numbers."""


_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(?:[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def _strip_resolvers(tags: set[str]) -> None:
    table = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in tags]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _Loader.yaml_implicit_resolvers = {k: v for k, v in table.items() if v}


_strip_resolvers(
    {
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",  # YAML 1.2 has none: 2024-01-01 stays the text it is
    }
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    prefixed = text.lstrip("+-")[:2].lower() in ("0o", "0x", "0b")
    return int(text, 0) if prefixed else int(text, 10)  # 010 is ten, as in YAML 1.2


_Loader.add_constructor("tag:yaml.org,2002:bool", _bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _int)


def load(text: str) -> Any:
    """Parse one YAML document (safe: plain data only, no Python objects).

    Raises:
        YAMLError: the text is not valid YAML.
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def dump(data: Any, *, width: int = 100) -> str:
    """YAML text that :func:`load` reads back as ``data``: strings a YAML 1.1 reader would take
    for booleans (``yes``, ``no``, ``on``, ``off``) are quoted, for every other reader's sake."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=width)
