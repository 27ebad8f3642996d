"""Fingerprints of the code a step runs: its module, the project modules it imports, conveyor.

Python sources are hashed in a normalised form (the ``ast`` dump without docstrings), so
comments, blank lines, formatting and docstrings do not change a fingerprint. Only modules whose
file lies inside the project folder are followed: the standard library, site-packages and
conveyor itself are covered by conveyor's version and its own code fingerprint.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import re
import site
import sys
import sysconfig
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

CONVEYOR_DIR = Path(__file__).resolve().parents[1]
_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True, slots=True)
class _Import:
    """One import statement's target: ``from <level dots><module> import <names>``."""

    module: str
    level: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Parsed:
    digest: str
    imports: tuple[_Import, ...]


_PARSED: dict[str, _Parsed] = {}  # SHA-256 of the raw bytes -> normalised digest and imports


def normalised_digest(source: str) -> str:
    """SHA-256 of Python source without comments, docstrings or formatting.

    Raises:
        SyntaxError: ``source`` is not valid Python.
    """
    return _digest(_without_docstrings(ast.parse(source)))


def _digest(tree: ast.AST) -> str:
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, _DOCSTRING_OWNERS) and _starts_with_docstring(node.body):
            node.body = node.body[1:] or [ast.Pass()]
    return tree


def _starts_with_docstring(body: list[ast.stmt]) -> bool:
    first = body[0] if body else None
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )


def _parse_file(path: Path) -> _Parsed:
    """The normalised digest and the imports of a Python file (memoised by content)."""
    raw = path.read_bytes()
    raw_digest = hashlib.sha256(raw).hexdigest()
    found = _PARSED.get(raw_digest)
    if found is None:
        try:
            tree = _without_docstrings(ast.parse(raw, filename=str(path)))
        except (SyntaxError, ValueError):
            found = _Parsed(raw_digest, ())
        else:
            found = _Parsed(_digest(tree), tuple(_imports(tree)))
        _PARSED[raw_digest] = found
    return found


def _imports(tree: ast.AST) -> Iterator[_Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (_Import(alias.name, 0, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            yield _Import(node.module or "", node.level, names)


@dataclass(frozen=True, slots=True)
class Closure:
    """What a function of a project module depends on inside that module.

    Attributes:
        digest: SHA-256 of the normalised module-level definitions the function reaches by
            name (itself, the functions, classes and assignments it uses, transitively).
        imports: the import statements whose bound names those definitions use.
    """

    digest: str
    imports: tuple[_Import, ...]


def function_closure(path: Path, qualname: str) -> Closure | None:
    """The part of module ``path`` that function ``qualname`` depends on, or None when the
    function is not a top-level definition there (a nested function, a lambda, a syntax error):
    then the whole module counts.

    So editing one step of a module leaves its sibling steps cached, while editing a helper
    function, class or constant a step uses (or an imported project module) does not.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return _closure(raw, str(path), qualname)


@functools.lru_cache(maxsize=256)
def _closure(raw: bytes, filename: str, qualname: str) -> Closure | None:
    """:func:`function_closure` of a module's bytes (memoised: unchanged files parse once)."""
    try:
        tree = _without_docstrings(ast.parse(raw, filename=filename))
    except (SyntaxError, ValueError):
        return None
    assert isinstance(tree, ast.Module)
    defined: dict[str, ast.stmt] = {}
    bound: dict[str, _Import] = {}
    for node in tree.body:
        for name in _defines(node):
            defined[name] = node
        for name, imp in _binds(node):
            bound[name] = imp
    start = defined.get(qualname.partition(".")[0])
    if start is None or "<" in qualname:
        return None
    reached: dict[int, ast.stmt] = {}
    used: dict[int, _Import] = {}
    queue = [start]
    while queue:
        node = queue.pop()
        if id(node) in reached:
            continue
        reached[id(node)] = node
        for name in _names_used(node):
            if name in defined:
                queue.append(defined[name])
            elif name in bound:
                used[id(bound[name])] = bound[name]
    ordered = [n for n in tree.body if id(n) in reached]  # source order: a stable digest
    digest = hashlib.sha256("\n".join(ast.dump(n) for n in ordered).encode()).hexdigest()
    return Closure(digest, tuple(used.values()))


def _defines(node: ast.stmt) -> list[str]:
    """The module-level names a statement defines (def, class, assignment targets)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _binds(node: ast.stmt) -> list[tuple[str, _Import]]:
    """The names a module-level import statement binds, each with what it imports."""
    if isinstance(node, ast.Import):
        return [
            (alias.asname or alias.name.partition(".")[0], _Import(alias.name, 0, ()))
            for alias in node.names
        ]
    if isinstance(node, ast.ImportFrom):
        return [
            (alias.asname or alias.name, _Import(node.module or "", node.level, (alias.name,)))
            for alias in node.names
            if alias.name != "*"
        ]
    return []


def _names_used(node: ast.AST) -> set[str]:
    """Every plain name a definition reads (decorators, defaults and annotations included)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


@functools.cache
def conveyor_code_digest() -> str:
    """SHA-256 over every file of the installed conveyor package (computed once per process)."""
    h = hashlib.sha256()
    for path in _files_under(CONVEYOR_DIR):
        h.update(path.relative_to(CONVEYOR_DIR).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _files_under(folder: Path) -> list[Path]:
    """Files below ``folder`` in a stable order, without bytecode caches and hidden files."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, or of every file below a folder (paths included)."""
    if not path.is_dir():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for sub in _files_under(path):
        h.update(sub.relative_to(path).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(sub.read_bytes()).digest())
    return h.hexdigest()


@functools.cache
def _outside_roots() -> tuple[Path, ...]:
    """Folders whose modules are never project code: the interpreter, site-packages, conveyor."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    found.add(site.getusersitepackages())
    found.update(sysconfig.get_paths().values())
    roots = {Path(p).resolve() for p in found if p}
    roots.add(CONVEYOR_DIR)
    return tuple(sorted(roots))


def in_project(path: Path, root: Path) -> bool:
    """Whether ``path`` is a Python file of the project at ``root`` (not an installed one)."""
    if path.suffix != ".py" or not path.is_relative_to(root):
        return False
    return not any(path.is_relative_to(outside) for outside in _outside_roots())


def project_root(module_name: str) -> Path | None:
    """The folder holding the top-level package (or module) of ``module_name``, if on disk."""
    top = sys.modules.get(module_name.partition(".")[0])
    if top is None:
        return None
    file = getattr(top, "__file__", None)
    if file is not None:
        path = Path(file).resolve()
        return path.parent.parent if path.name == "__init__.py" else path.parent
    locations = list(getattr(top, "__path__", ()))  # a namespace package
    return Path(locations[0]).resolve().parent if locations else None


def module_file(name: str) -> Path | None:
    """The source file of module ``name``, from ``sys.modules`` or found without importing."""
    module = sys.modules.get(name)
    if module is not None:
        file = getattr(module, "__file__", None)
        return Path(file).resolve() if file else None
    parts = name.split(".")
    try:
        spec = PathFinder.find_spec(parts[0])
        for i in range(1, len(parts)):
            locations = spec.submodule_search_locations if spec is not None else None
            if not locations:
                return None
            spec = PathFinder.find_spec(".".join(parts[: i + 1]), list(locations))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    return Path(spec.origin).resolve()


def module_digests(entries: Iterable[tuple[str, Path]], root: Path) -> dict[str, str]:
    """Normalised digests of ``entries`` (module name, file) and every project module they
    import, directly or not, keyed by the file's path relative to ``root``."""
    seen: dict[Path, str] = {}
    queue = list(entries)
    while queue:
        name, path = queue.pop()
        if path in seen:
            continue
        parsed = _parse_file(path)
        seen[path] = parsed.digest
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imp in parsed.imports:
            queue.extend(_project_targets(imp, package, root))
    return {_label(path, root): digest for path, digest in sorted(seen.items())}


def imported_modules(
    imports: Iterable[_Import], module: str, path: Path, root: Path
) -> list[tuple[str, Path]]:
    """The project modules that ``imports`` (statements of ``module`` at ``path``) load."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return [target for imp in imports for target in _project_targets(imp, package, root)]


def _project_targets(imp: _Import, package: str, root: Path) -> Iterator[tuple[str, Path]]:
    """The project modules an import statement may load: the module and, for a package, the
    submodules it names."""
    target = _absolute(imp, package)
    if not target:
        return
    file = module_file(target)
    if file is None or not in_project(file, root):
        return
    yield target, file
    if file.name == "__init__.py":
        for name in imp.names:
            sub = module_file(f"{target}.{name}")
            if sub is not None and in_project(sub, root):
                yield f"{target}.{name}", sub


def _absolute(imp: _Import, package: str) -> str | None:
    if not imp.level:
        return imp.module
    if not package:
        return None  # a relative import in a top-level module cannot be resolved
    try:
        return importlib.util.resolve_name("." * imp.level + imp.module, package)
    except ImportError:
        return None


def _label(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_][\w.]*)?")


def named_modules(texts: Iterable[str]) -> dict[str, str]:
    """Digests of the project modules that dotted paths name (``pkg.mod:attr``,
    ``pkg.mod.Class``), e.g. an estimator or derive function a built-in step loads from the
    project, with the project modules they import; installed modules are left out."""
    found: dict[str, str] = {}
    for text in texts:
        named = _named_module(text)
        if named is not None:
            name, file, root = named
            found.update(module_digests([(name, file)], root))
    return found


@functools.lru_cache(maxsize=1024)
def _named_module(text: str) -> tuple[str, Path, Path] | None:
    """The module a dotted path names, its file and its project root, if it is project code
    (where a module lives is looked up once per process; its content is read every time)."""
    if not _DOTTED.fullmatch(text) or ("." not in text and ":" not in text):
        return None
    module, colon, _ = text.partition(":")
    candidates = [module] if colon else [module, module.rpartition(".")[0]]
    for name in filter(None, candidates):
        file = module_file(name)
        if file is None:
            continue
        if file.suffix != ".py" or any(file.is_relative_to(o) for o in _outside_roots()):
            return None
        base = file.parent if file.name == "__init__.py" else file
        return name, file, base.parents[len(name.split(".")) - 1]
    return None
