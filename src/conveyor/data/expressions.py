"""Row-check expressions of schema.yaml: a small language over a row's columns, never Python.

schema.yaml is data, so its ``checks:`` never reach ``eval`` (nor ``DataFrame.eval``, which gets
at Python objects through ``@name`` and attributes). The text is parsed with :mod:`ast` and
compiled, node by node from a whitelist, into a function of a DataFrame::

    unit_of_wage == 'Hour' and prevailing_wage <= 400
    `wage (USD)` > 0 & notna(employer)
    country in ['DE', 'FR'] or 0 <= abs(score - 1.5) < 2

Allowed: columns (bare names, or any name in backticks), constants (numbers, strings, True,
False, None), comparisons (chained too; ``in``/``not in``, or ``==``/``!=``, against a literal
list), ``and or not`` (also written ``& | ~``, as loose as ``and``/``or`` as in pandas),
arithmetic ``+ - * / // % **``, parentheses, and the functions in :data:`FUNCTIONS`. A comparison
with a missing value is False (``!=`` and ``not in`` too).
"""

from __future__ import annotations

import ast
import difflib
import functools
import operator
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor._text import short_list
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    import pandas as pd

__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "Expression", "compile_expression"]

MAX_LENGTH = 1000  # characters
MAX_DEPTH = 50  # nested operations


def _series(value: Any) -> bool:
    import pandas as pd

    return isinstance(value, pd.Series)


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _text(value: Any, function: str) -> Any:
    """A Series' ``.str`` accessor, or the string itself."""
    if _series(value):
        return value.str
    if not isinstance(value, str):
        raise TypeError(f"{function}() takes text, got {value!r}")
    return value


FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "abs": lambda v: v.abs() if _series(v) else abs(v),
    "isna": lambda v: v.isna() if _series(v) else _missing(v),
    "isnull": lambda v: v.isna() if _series(v) else _missing(v),
    "notna": lambda v: v.notna() if _series(v) else not _missing(v),
    "notnull": lambda v: v.notna() if _series(v) else not _missing(v),
    "len": lambda v: _text(v, "len").len() if _series(v) else len(_text(v, "len")),
    "lower": lambda v: _text(v, "lower").lower(),
    "upper": lambda v: _text(v, "upper").upper(),
    "strip": lambda v: _text(v, "strip").strip(),
}
"""The only functions a row check can call, each on one value (a column or a constant)."""

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_NUMBERS_ONLY = (ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)  # no 'x' * 10**9, '%s' % x
_CONSTANTS = (bool, int, float, str, type(None))
_COLLECTIONS = (ast.List, ast.Tuple, ast.Set)
_REJECTED: tuple[tuple[tuple[type[ast.AST], ...], str], ...] = (
    ((ast.Attribute,), "attribute access"),
    ((ast.Subscript, ast.Slice), "indexing"),
    ((ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp), "a comprehension"),
    ((ast.JoinedStr, ast.FormattedValue), "an f-string"),
    ((ast.Lambda,), "lambda"),
    ((ast.NamedExpr,), "assignment (:=)"),
    ((ast.IfExp,), "a conditional expression"),
    ((ast.Dict,), "a dict"),
    (_COLLECTIONS, "a list outside 'in [...]'"),
)
_SYMBOLS = {ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^"}


class Expression:
    """A compiled row check, evaluated on a whole DataFrame at once.

    Attributes:
        text: the expression as written.
        columns: the columns it reads, in order of first use.
    """

    def __init__(self, text: str, columns: tuple[str, ...], run: Callable[[Any], Any]) -> None:
        self.text = text
        self.columns = columns
        self._run = run

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def check_columns(self, available: Collection[Any]) -> None:
        """Raise unless every column the expression reads is in ``available``.

        Raises:
            ConfigError: naming the first unknown column and the columns there are.
        """
        names = [str(c) for c in available]
        for column in self.columns:
            if column not in names:
                close = difflib.get_close_matches(column, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"unknown column {column!r}{hint}; the columns are {short_list(names)}"
                )

    def evaluate(self, frame: pd.DataFrame) -> Any:
        """The value on ``frame``: a Series with one value per row, or a scalar.

        Raises:
            ConfigError: a column is missing, or an operation does not apply to its values.
        """
        with np.errstate(all="ignore"):
            return self._run(frame)

    def mask(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """A boolean row mask; a missing result counts as False.

        Raises:
            ConfigError: as :meth:`evaluate`, or the result is not true/false.
        """
        value = _boolean(self.evaluate(frame), self.text)
        if _series(value):
            return value.to_numpy(dtype=bool, na_value=False)  # type: ignore[no-any-return]
        return np.full(len(frame), value is True, dtype=bool)


@functools.lru_cache(maxsize=256)
def compile_expression(text: str) -> Expression:
    """Parse and check a row-check expression (the language is in the module docstring).

    Raises:
        ConfigError: the text is empty, too long or too deep, not valid syntax, or uses
            anything outside the language; the message quotes the offending piece.
    """
    if not text.strip():
        raise ConfigError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"the expression has {len(text):,} characters; at most {MAX_LENGTH:,}")
    source, names = _prepare(text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"not a valid expression: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):  # a null byte; absurd nesting
        raise ConfigError("not a valid expression") from None
    compiler = _Compiler(source, names)
    run = compiler.compile(tree.body, 0)
    return Expression(text, tuple(compiler.columns), run)


def _prepare(text: str) -> tuple[str, dict[str, str]]:
    """Outside string literals: backtick names to placeholders, ``&``/``|`` to ``and``/``or``
    (pandas' precedence), ``@`` refused. Returns the source and placeholder -> column."""
    prefix = "_col"
    while prefix in text:
        prefix += "_"
    out: list[str] = []
    names: dict[str, str] = {}
    i = 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            end = i + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
        elif char == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ConfigError(f"unclosed backtick: {text[i : i + 30]!r}")
            if end == i + 1:
                raise ConfigError("empty backticks: write a column name between them")
            placeholder = f"{prefix}{len(names)}"
            names[placeholder] = text[i + 1 : end]
            before, after = (out[-1][-1:] if out else ""), text[end + 1 : end + 2]
            pad = [" " if c.isalnum() or c == "_" else "" for c in (before, after)]
            out.append(f"{pad[0]}{placeholder}{pad[1]}")  # `a`and b: keep tokens apart
            i = end + 1
        elif char == "@":
            raise ConfigError(
                f"'@' is not allowed in a row check: {text[i : i + 30]!r} (a row check reads "
                "the row's columns and constants, never Python variables)"
            )
        else:
            out.append({"&": " and ", "|": " or ", "\n": " ", "\r": " ", "\t": " "}.get(char, char))
            i += 1
    return "".join(out).strip(), names


class _Compiler:
    """Walks the tree once, refusing anything outside the whitelist, and builds closures."""

    def __init__(self, source: str, names: dict[str, str]) -> None:
        self.source = source
        self.names = names
        self.columns: list[str] = []

    def piece(self, node: ast.AST) -> str:
        """The text of ``node`` (backtick names restored), cut to 60 characters."""
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        for placeholder in sorted(self.names, key=len, reverse=True):  # _col12 before _col1
            text = text.replace(placeholder, f"`{self.names[placeholder]}`")
        return text if len(text) <= 60 else text[:57] + "..."

    def refuse(self, what: str, node: ast.AST, hint: str = "") -> ConfigError:
        hint = f" ({hint})" if hint else ""
        return ConfigError(f"{what} is not allowed in a row check: {self.piece(node)!r}{hint}")

    def compile(self, node: ast.expr, depth: int) -> Callable[[Any], Any]:
        if depth > MAX_DEPTH:
            raise ConfigError(f"the expression is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            if type(node.value) not in _CONSTANTS:
                raise self.refuse(f"a constant of type {type(node.value).__name__}", node)
            value = node.value
            return lambda f: value
        if isinstance(node, ast.Name):
            name = self.names.get(node.id, node.id)
            if name not in self.columns:
                self.columns.append(name)
            return lambda f: _column(f, name)
        if isinstance(node, ast.Compare):
            return self.compare(node, depth + 1)
        if isinstance(node, ast.BoolOp):
            parts = [self.boolean(v, depth + 1) for v in node.values]
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            return lambda f: functools.reduce(combine, (p(f) for p in parts))
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth + 1)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth + 1)
        if isinstance(node, ast.Call):
            return self.call(node, depth + 1)
        what = next((w for kinds, w in _REJECTED if isinstance(node, kinds)), type(node).__name__)
        raise self.refuse(what, node)

    def boolean(self, node: ast.expr, depth: int) -> Callable[[Any], Any]:
        run, piece = self.compile(node, depth), self.piece(node)
        return lambda f: _boolean(run(f), piece)

    def unary(self, node: ast.UnaryOp, depth: int) -> Callable[[Any], Any]:
        if isinstance(node.op, ast.Not | ast.Invert):
            inner = self.boolean(node.operand, depth)
            return lambda f: _negate(inner(f))
        run, piece = self.compile(node.operand, depth), self.piece(node)
        sign = operator.neg if isinstance(node.op, ast.USub) else operator.pos
        return lambda f: _guard(piece, sign, run(f))

    def binary(self, node: ast.BinOp, depth: int) -> Callable[[Any], Any]:
        if isinstance(node.op, ast.BitAnd | ast.BitOr):  # only reached if _prepare was bypassed
            left, right = self.boolean(node.left, depth), self.boolean(node.right, depth)
            combine = operator.and_ if isinstance(node.op, ast.BitAnd) else operator.or_
            return lambda f: combine(left(f), right(f))
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise self.refuse(f"operator '{_SYMBOLS.get(type(node.op), '?')}'", node)
        left, right = self.compile(node.left, depth), self.compile(node.right, depth)
        piece, numbers = self.piece(node), isinstance(node.op, _NUMBERS_ONLY)
        return lambda f: _guard(piece, _arithmetic, op, left(f), right(f), numbers)

    def call(self, node: ast.Call, depth: int) -> Callable[[Any], Any]:
        if not isinstance(node.func, ast.Name):
            raise self.refuse("calling", node)
        name = node.func.id
        if name not in FUNCTIONS or name in self.names:  # `len`(x) calls a column
            raise ConfigError(
                f"function {self.names.get(name, name)!r} is not allowed in a row check: "
                f"{self.piece(node)!r} "
                f"(the functions are {', '.join(FUNCTIONS)})"
            )
        if len(node.args) != 1 or node.keywords or isinstance(node.args[0], ast.Starred):
            raise ConfigError(f"{name}() takes exactly one value: {self.piece(node)!r}")
        run, piece, function = self.compile(node.args[0], depth), self.piece(node), FUNCTIONS[name]
        return lambda f: _guard(piece, function, run(f))

    def compare(self, node: ast.Compare, depth: int) -> Callable[[Any], Any]:
        operands = [node.left, *node.comparators]
        steps = [
            self.pair(left, op, right, node, depth)
            for left, op, right in zip(operands, node.ops, operands[1:], strict=False)
        ]
        return lambda f: functools.reduce(operator.and_, (step(f) for step in steps))

    def pair(
        self, left: ast.expr, op: ast.cmpop, right: ast.expr, whole: ast.Compare, depth: int
    ) -> Callable[[Any], Any]:
        piece = self.piece(whole)
        if isinstance(op, ast.Is | ast.IsNot):
            raise self.refuse("'is'", whole, "use ==, != or isna()")
        if isinstance(left, _COLLECTIONS) and isinstance(op, ast.Eq | ast.NotEq):
            left, right = right, left  # ['a', 'b'] == x reads as x == ['a', 'b']
        if isinstance(right, _COLLECTIONS) and isinstance(
            op, ast.In | ast.NotIn | ast.Eq | ast.NotEq
        ):
            values, run = self.literal(right), self.compile(left, depth)
            negate = isinstance(op, ast.NotIn | ast.NotEq)
            return lambda f: _guard(piece, _isin, run(f), values, negate)
        if isinstance(op, ast.In | ast.NotIn):
            raise self.refuse("'in' without a literal list", whole, "write x in ['a', 'b']")
        for side in (left, right):
            if isinstance(side, ast.Constant) and side.value is None:
                raise self.refuse("comparing with None", whole, "use isna(x) or notna(x)")
        a, b, compare = self.compile(left, depth), self.compile(right, depth), _COMPARE[type(op)]
        return lambda f: _guard(piece, _compare, compare, a(f), b(f))

    def literal(self, node: ast.expr) -> tuple[Any, ...]:
        """The constants of a literal list (numbers may carry a sign)."""
        values: list[Any] = []
        for item in node.elts if isinstance(node, _COLLECTIONS) else ():
            signed = isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.USub | ast.UAdd)
            constant = item.operand if isinstance(item, ast.UnaryOp) and signed else item
            kinds = (int, float) if signed else _CONSTANTS
            if not (isinstance(constant, ast.Constant) and type(constant.value) in kinds):
                raise self.refuse("a list item that is not a constant", item)
            negative = isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.USub)
            values.append(-constant.value if negative else constant.value)  # type: ignore[operator]
        return tuple(values)


def _column(frame: pd.DataFrame, name: str) -> Any:
    import pandas as pd

    if name not in frame.columns:
        raise ConfigError(
            f"unknown column {name!r}; the columns are {short_list(map(str, frame.columns))}"
        )
    value = frame[name]
    if isinstance(value, pd.DataFrame):
        raise ConfigError(f"column {name!r} appears more than once in the data")
    return value


def _guard(piece: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``; what pandas or numpy refuse becomes a ConfigError quoting ``piece``."""
    try:
        return function(*args)
    except (TypeError, ValueError, ArithmeticError, AttributeError, NotImplementedError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot evaluate {piece!r}: {reason}") from None


def _compare(compare: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """``a <op> b``, False where either side is missing (for ``!=`` too)."""
    result = compare(a, b)
    for side in (a, b):
        if _series(side):
            result = result & side.notna()
    return result


def _isin(value: Any, values: tuple[Any, ...], negate: bool) -> Any:
    """Membership in a literal list; a missing value is never ``not in`` one."""
    if _series(value):
        found = value.isin(list(values))
        return ~found & value.notna() if negate else found
    found = value in values
    return (not found and not _missing(value)) if negate else found


def _arithmetic(op: Callable[[Any, Any], Any], a: Any, b: Any, numbers: bool) -> Any:
    """``a <op> b``; ``numbers``: the operator takes numbers only (no string repetition)."""
    import pandas as pd

    for side in (a, b) if numbers else ():
        if _series(side) and not pd.api.types.is_numeric_dtype(side.dtype):
            raise TypeError(f"it takes numbers, got {side.dtype} values")
        if not _series(side) and not isinstance(side, int | float | np.number):
            raise TypeError(f"it takes numbers, got {side!r}")
    if op is operator.pow and not _series(a) and not _series(b):
        return np.float64(a) ** np.float64(b)  # 10 ** 10 ** 10 overflows to inf, never hangs
    return op(a, b)


def _boolean(value: Any, piece: str) -> Any:
    """``value`` as true/false: a boolean Series, a bool, or NA; else a ConfigError."""
    import pandas as pd

    if _series(value):
        if pd.api.types.is_bool_dtype(value.dtype):
            return value
        if value.dtype == object and pd.api.types.infer_dtype(value, skipna=True) in (
            "boolean",
            "empty",
        ):
            return value.astype("boolean")
        raise ConfigError(f"{piece!r} gives {value.dtype} values, not true/false")
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if _missing(value):
        return pd.NA
    raise ConfigError(f"{piece!r} gives {value!r}, not true/false")


def _negate(value: Any) -> Any:
    """Logical not of a true/false value; NA stays NA."""
    return not value if isinstance(value, bool) else ~value
