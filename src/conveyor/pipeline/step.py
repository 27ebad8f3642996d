"""A step: a Python function with named inputs, outputs and parameters."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias, overload

from conveyor.pipeline import _code
from conveyor.pipeline.context import CONTEXT_PARAMETER

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

Dependency: TypeAlias = "str | os.PathLike[str] | ModuleType"
"""A declared code or data dependency: a module, a module name, or a file or folder path."""


@dataclass(frozen=True, eq=False)
class Step:
    """One unit of work in a pipeline.

    Inputs are dataset names bound to the function's parameters; outputs are dataset names for
    the values it returns (one name: the return value; several: a tuple or a dict by name).
    Parameters are keyword arguments fixed at definition time and part of the cache key.

    Args:
        func: the function to run.
        name: unique step name in a pipeline; defaults to the function's name.
        inputs: parameter name -> dataset name.
        outputs: dataset names produced, in return order.
        params: keyword arguments passed to ``func``.
        cache: whether a previous successful result with the same key may be reused.
        version: a version you bump by hand to invalidate cached results; part of the key.
        depends_on: modules (objects or dotted names) and files or folders (paths, relative
            ones to the project folder) whose content is part of the key, on top of the
            project modules the step's module imports. Stored as module names and absolute
            paths.

    Raises:
        TypeError: a parameter or input names no argument of ``func``, or an argument is unbound.
        ValueError: no outputs, duplicated output names, or a dependency that does not exist.
    """

    func: Callable[..., Any]
    name: str
    inputs: Mapping[str, str]
    outputs: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    cache: bool = True
    version: str | None = None
    depends_on: Sequence[Dependency] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "depends_on", _dependencies(self.func, self.name, self.depends_on))
        if not self.outputs:
            raise ValueError(f"step {self.name!r}: declare at least one output")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"step {self.name!r}: duplicated output names {self.outputs}")
        signature = inspect.signature(self.func)
        names = set(signature.parameters)
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        for kind, given in (("input", self.inputs), ("param", self.params)):
            unknown = set() if open_kwargs else set(given) - names
            if unknown:
                raise TypeError(
                    f"step {self.name!r}: {kind} {sorted(unknown)} is not an argument of "
                    f"{self.func.__qualname__}{signature}"
                )
        bound = set(self.inputs) | set(self.params) | {CONTEXT_PARAMETER}
        for pname, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname not in bound and param.default is inspect.Parameter.empty:
                raise TypeError(
                    f"step {self.name!r}: argument {pname!r} is neither input nor param"
                )

    @property
    def wants_context(self) -> bool:
        """Whether the function takes the run's ``ctx``."""
        return CONTEXT_PARAMETER in inspect.signature(self.func).parameters

    def with_params(self, **params: Any) -> Step:
        """A copy of this step with some parameters overridden."""
        return replace(self, params={**self.params, **params})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (handy in notebooks and tests)."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        ins = ", ".join(self.inputs.values())
        return f"Step({self.name!r}: [{ins}] -> [{', '.join(self.outputs)}])"


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    func: None = None,
    /,
    *,
    name: str | None = None,
    inputs: Sequence[str] | Mapping[str, str] | None = None,
    outputs: str | Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    cache: bool = True,
    version: str | None = None,
    depends_on: Sequence[Dependency] = (),
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    inputs: Sequence[str] | Mapping[str, str] | None = None,
    outputs: str | Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    cache: bool = True,
    version: str | None = None,
    depends_on: Sequence[Dependency] = (),
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a :class:`Step` from a function; use bare (``@step``) or with options.

    By default every argument without a default value is an input named like the argument,
    arguments with defaults are parameters, and the single output is named after the function.
    ``inputs`` as a list renames those inputs in order; as a dict maps argument -> dataset.
    ``version`` and ``depends_on`` add to the cache key (see :class:`Step`).
    """

    def build(fn: Callable[..., Any]) -> Step:
        return Step(
            func=fn,
            name=name or fn.__name__,
            inputs=_bind_inputs(fn, inputs, params or {}),
            outputs=_as_outputs(outputs, fn.__name__),
            params=dict(params or {}),
            cache=cache,
            version=version,
            depends_on=depends_on,
        )

    return build if func is None else build(func)


def _bind_inputs(
    fn: Callable[..., Any],
    inputs: Sequence[str] | Mapping[str, str] | None,
    params: Mapping[str, Any],
) -> dict[str, str]:
    if isinstance(inputs, dict):
        return dict(inputs)
    free = [
        pname
        for pname, p in inspect.signature(fn).parameters.items()
        if p.default is inspect.Parameter.empty
        and pname not in params
        and pname != CONTEXT_PARAMETER
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if inputs is None:
        return {p: p for p in free}
    names = [inputs] if isinstance(inputs, str) else list(inputs)
    if len(names) != len(free):
        raise TypeError(
            f"step {fn.__name__!r}: {len(names)} input names given for {len(free)} arguments {free}"
        )
    return dict(zip(free, names, strict=True))


def _as_outputs(outputs: str | Sequence[str] | None, default: str) -> tuple[str, ...]:
    if outputs is None:
        return (default,)
    if isinstance(outputs, str):
        return (outputs,)
    return tuple(outputs)


def _dependencies(
    fn: Callable[..., Any], name: str, given: Sequence[Dependency]
) -> tuple[str, ...]:
    """Declared dependencies as module names and absolute paths, each checked to exist."""
    if isinstance(given, str | os.PathLike | ModuleType):
        given = [given]
    if not given:
        return ()
    root = _code.project_root(getattr(fn, "__module__", None) or "") or Path.cwd()
    return tuple(_dependency(dep, name, root) for dep in given)


def _dependency(dep: Dependency, name: str, root: Path) -> str:
    if isinstance(dep, ModuleType):
        return dep.__name__
    if not isinstance(dep, str | os.PathLike):
        raise TypeError(
            f"step {name!r}: depends_on takes modules, module names or paths, "
            f"got {type(dep).__name__}"
        )
    text = os.fspath(dep)
    path = Path(text) if os.path.isabs(text) else root / text
    if isinstance(dep, os.PathLike) or "/" in text or os.sep in text or path.exists():
        if not path.exists():
            raise ValueError(f"step {name!r}: depends_on path {text!r} does not exist ({path})")
        return str(path.resolve())
    if _code.module_file(text) is None:
        raise ValueError(
            f"step {name!r}: depends_on {text!r} is neither a module on sys.path nor a path "
            f"under {root}"
        )
    return text
