"""YAML read with the YAML 1.2 core schema's scalars: ``yes``, ``no``, ``on``, ``off``, ``y`` and
``n`` stay strings (PyYAML follows YAML 1.1, where they are booleans), so a class named ``yes`` or
a category ``no`` means what it says. Only ``true``/``false`` (any case) are booleans, and
``1:30`` and ``2024-01-01`` are strings, not YAML 1.1's base-60 integer and date.

Also refused, with the line: a key given twice in one mapping (PyYAML keeps the last silently),
nesting deeper than :data:`MAX_DEPTH`, and aliases that expand to more than :data:`MAX_NODES`
values (an "alias bomb": a few lines that become gigabytes when the config is serialised)."""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["YAMLError", "dump", "load"]

YAMLError = yaml.YAMLError


MAX_DEPTH = 100  # nested mappings/lists
MAX_NODES = 100_000  # values after expanding aliases


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no sexagesimal numbers, no duplicate keys, and bounds
    on nesting and alias expansion."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand to more than {MAX_NODES:,} values (an alias bomb?)",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges: the mapping's own keys override, by design
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                continue  # unhashable: SafeLoader reports it
            if key in seen:
                line = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (first on line {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` becomes once every alias is copied out (shared nodes counted
    each time they are referenced; computed once per node, so this is linear in the text)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once (SafeLoader builds it as a cycle)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


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
