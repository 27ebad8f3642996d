"""Cache keys: hash(step code + declared version + params + input artifact hashes + conveyor).

The code part covers what the step runs, not only the function's own text: for a built-in step
(a function of the conveyor package) a fingerprint of the installed conveyor code; for a user
step the normalised source of its module and of every project module it imports, plus what it
declares in ``depends_on``. :class:`KeyParts` keeps each ingredient apart, so a miss can be
explained ingredient by ingredient.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.pipeline import _code

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conveyor.pipeline.step import Step

CONVEYOR_CODE = "conveyor"
"""The ``KeyParts.code`` entry holding the installed conveyor package's fingerprint."""


@functools.cache
def source_hash(func: Callable[..., Any]) -> str:
    """SHA-256 of a function's source (dedented), or of its bytecode when no source exists."""
    try:
        text = textwrap.dedent(inspect.getsource(func))
        data = text.encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        data = code.co_code + repr(code.co_consts).encode() if code else repr(func).encode()
    return hashlib.sha256(data).hexdigest()


@functools.cache
def function_hash(func: Callable[..., Any]) -> str:
    """Like :func:`source_hash`, but blind to comments, docstrings and formatting."""
    try:
        return _code.normalised_digest(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):  # no source, or a lambda inside an expression
        return source_hash(func)


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing: sorted keys; non-JSON values by their repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class KeyParts:
    """The ingredients of a cache key, each hashed on its own.

    Attributes:
        code: what code the step runs -> its digest (``function NAME``, ``module PATH``,
            ``file PATH``, ``conveyor``).
        version: the version the step declares (``@step(version=...)``), if any.
        params: parameter name -> digest of its value.
        inputs: argument name -> SHA-256 of the artifact fed to it.
        outputs: the declared output names.
        conveyor: conveyor's version.
    """

    code: Mapping[str, str]
    version: str | None
    params: Mapping[str, str]
    inputs: Mapping[str, str]
    outputs: tuple[str, ...]
    conveyor: str
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", _sha(canonical_json(self.to_json())))

    @property
    def key(self) -> str:
        """The cache key: SHA-256 of every part."""
        return self._key

    def to_json(self) -> dict[str, Any]:
        """The parts as plain JSON data (what the metadata store records)."""
        return {
            "code": dict(sorted(self.code.items())),
            "version": self.version,
            "params": dict(sorted(self.params.items())),
            "inputs": dict(sorted(self.inputs.items())),
            "outputs": list(self.outputs),
            "conveyor": self.conveyor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyParts:
        """Parts read back from :meth:`to_json` output.

        Raises:
            KeyError: a part is missing.
        """
        return cls(
            code=dict(data["code"]),
            version=data["version"],
            params=dict(data["params"]),
            inputs=dict(data["inputs"]),
            outputs=tuple(data["outputs"]),
            conveyor=str(data["conveyor"]),
        )


def key_parts(step: Step, input_digests: Mapping[str, str], version: str) -> KeyParts:
    """The parts of ``step``'s cache key when fed artifacts with ``input_digests``.

    Args:
        step: the step.
        input_digests: argument name -> SHA-256 of the artifact fed to it.
        version: conveyor's version (a new version invalidates every cache entry).
    """
    return KeyParts(
        code=code_digests(step),
        version=step.version,
        params={name: _sha(canonical_json(value)) for name, value in step.params.items()},
        inputs=dict(input_digests),
        outputs=tuple(step.outputs),
        conveyor=version,
    )


def cache_key(step: Step, input_digests: Mapping[str, str], version: str) -> str:
    """The key under which a successful execution of ``step`` can be reused.

    Args:
        step: the step.
        input_digests: argument name -> SHA-256 of the artifact fed to it.
        version: conveyor's version (a new version invalidates every cache entry).
    """
    return key_parts(step, input_digests, version).key


def code_digests(step: Step) -> dict[str, str]:
    """What code ``step`` runs -> digest.

    A built-in step: its function's name, the installed conveyor code, and the project modules
    its parameters name by dotted path (an estimator, a derive function). A user step: its
    function with the definitions of its own module it uses (functions, classes, constants,
    transitively), the project modules those import (whole, directly or not), and what it
    declares in ``depends_on``; editing a sibling step of the same module does not count. A
    function that is not a top-level definition counts its whole module. A function whose module
    is not a project file (a lambda made by ``eval``, a function from an installed package) is
    hashed by its own source.
    """
    func = _unwrap(step.func)
    module = getattr(func, "__module__", None) or ""
    label = f"function {module}:{getattr(func, '__qualname__', None) or step.name}"
    if module == "conveyor" or module.startswith("conveyor."):
        parts = {label: CONVEYOR_CODE, CONVEYOR_CODE: _code.conveyor_code_digest()}
        named = _code.named_modules(_strings(step.params))
        return parts | {f"module {k}": v for k, v in named.items()}
    root = _code.project_root(module) or Path.cwd()
    modules: list[tuple[str, Path]] = []
    own = _code.module_file(module) if module else None
    closure = None
    if own is not None and _code.in_project(own, root):
        closure = _code.function_closure(own, getattr(func, "__qualname__", ""))
    if closure is not None and own is not None:
        # the function with what it uses of its own module; the project modules it imports
        parts = {label: closure.digest}
        modules.extend(_code.imported_modules(closure.imports, module, own, root))
    elif own is not None and _code.in_project(own, root):
        modules.append((module, own))
        parts = {label: "module"}  # the module's digest covers the function's source
    else:
        parts = {label: function_hash(func)}
    for dep in step.depends_on:
        path = _dependency_path(str(dep))
        if path is None:
            parts[f"module {dep}"] = "missing"
        elif path.suffix == ".py":
            modules.append((_module_name(str(dep), path, root), path))
        else:
            where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            parts[f"file {where}"] = _code.file_digest(path) if path.exists() else "missing"
    parts.update({f"module {k}": v for k, v in _code.module_digests(modules, root).items()})
    return parts


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a parameter value (nested mappings and sequences included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item)


def _unwrap(func: Callable[..., Any]) -> Callable[..., Any]:
    inner = getattr(func, "func", None)  # functools.partial
    return _unwrap(inner) if isinstance(func, functools.partial) and callable(inner) else func


def _dependency_path(dep: str) -> Path | None:
    """A declared dependency (absolute path or module name) as a file, if it exists."""
    return Path(dep) if os.path.isabs(dep) else _code.module_file(dep)


def _module_name(dep: str, path: Path, root: Path) -> str:
    if not os.path.isabs(dep):
        return dep
    if not path.is_relative_to(root):
        return path.stem
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
