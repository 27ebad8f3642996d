"""Typed values inside conveyor.yaml: search spaces, gate rules, cron schedules and alert URLs.

Each value has exactly one parser. The config models call it at load (so a typo fails
``conveyor run`` before any step runs) and the stages call it for values given in code
(``parse_space``, ``parse_gates``, ``schedule_due``). A parser raises :class:`ValueProblem`,
which names the sub-key at fault (``.low``, ``[0].url``) so each caller prefixes its own key path.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError, core_schema

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler

__all__ = [
    "URL_CHANNELS",
    "CronSchedule",
    "GateOp",
    "GateRule",
    "SearchChoices",
    "SearchParam",
    "SearchRange",
    "SearchSpec",
    "ValueProblem",
    "check_alert_url",
    "parse_search_param",
    "pydantic_error",
    "validated",
]

T = TypeVar("T")
Scalar = bool | int | float | str | None
GateOp = Literal[">=", ">", "<=", "<", "=="]
URL_CHANNELS = ("webhook", "slack")  # alert channels that POST to monitoring.alerts[].url


class ValueProblem(ValueError):
    """A config value that does not parse; ``at`` is the sub-key at fault (``""``: the value)."""

    def __init__(self, message: str, *, at: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.at = at

    def located(self, where: str) -> str:
        """``where.at: message``: the message prefixed with the full key path."""
        return f"{where}{self.at}: {self.message}"


def validated(parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """``parse`` as a pydantic validator: a :class:`ValueProblem` becomes a validation error
    whose context carries the sub-key (``config.format_validation_error`` appends it to the
    key path)."""

    def validate(value: Any) -> T:
        try:
            return parse(value)
        except ValueProblem as exc:
            raise pydantic_error(exc) from None

    return validate


def pydantic_error(problem: ValueProblem, *, at: str = "") -> PydanticCustomError:
    """``problem`` as a pydantic error; ``at`` (e.g. ``[0].url``) goes before its sub-key."""
    return PydanticCustomError(
        "conveyor_value", "{message}", {"message": problem.message, "at": at + problem.at}
    )


# --- search spaces -------------------------------------------------------------------------------

_RANGE_KEYS = ("low", "high", "log", "step")


@dataclass(frozen=True)
class SearchChoices:
    """A categorical choice (``[3, 5, null]`` in conveyor.yaml)."""

    choices: tuple[Scalar, ...]

    def dump(self) -> list[Scalar]:
        """The value as written in conveyor.yaml."""
        return list(self.choices)


@dataclass(frozen=True)
class SearchRange:
    """A numeric range (``{low, high[, log][, step]}``): of integers when both bounds and the
    step are integers, of floats otherwise."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None
    written: tuple[str, ...] = field(default=("low", "high"), compare=False, repr=False)

    @property
    def integer(self) -> bool:
        """Whether the range holds integers (as Optuna's ``IntDistribution``)."""
        step = 1 if self.step is None else self.step
        return all(isinstance(v, int) for v in (self.low, self.high, step))

    def dump(self) -> dict[str, Any]:
        """The value as written in conveyor.yaml (the keys given, in their order)."""
        return {key: getattr(self, key) for key in self.written}


SearchSpec = SearchChoices | SearchRange


def parse_search_param(spec: Any) -> SearchSpec:
    """One parameter of a candidate's ``search``: a list of scalar choices, or a range mapping.

    Raises:
        ValueProblem: neither form, or bad bounds, ``log`` or ``step``.
    """
    if isinstance(spec, SearchChoices | SearchRange):
        return spec
    if isinstance(spec, list | tuple):
        return _choices(spec)
    if not isinstance(spec, Mapping) or not {"low", "high"} <= set(spec):
        raise ValueProblem(
            f"expected a list of choices or a range {{low, high[, log][, step]}}, got {spec!r}"
        )
    return _range(spec)


def _choices(spec: list[Any] | tuple[Any, ...]) -> SearchChoices:
    if not spec:
        raise ValueProblem("empty list of choices")
    bad = [c for c in spec if c is not None and not isinstance(c, bool | int | float | str)]
    if bad:
        raise ValueProblem(f"choices must be scalars (got {bad[0]!r})")
    return SearchChoices(tuple(spec))


def _range(spec: Mapping[str, Any]) -> SearchRange:
    if unknown := sorted(set(spec) - set(_RANGE_KEYS)):
        raise ValueProblem(f"unknown range key(s) {unknown} (use low, high, log, step)")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for name, bound in (("low", low), ("high", high), ("step", step)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise ValueProblem(f"expected a number, got {bound!r}", at=f".{name}")
    if not isinstance(log, bool):
        raise ValueProblem(f"expected true or false, got {log!r}", at=".log")
    if low > high:
        raise ValueProblem(f"low ({low}) is greater than high ({high})")
    if log and step is not None:
        raise ValueProblem("log and step cannot be used together")
    if log and low <= 0:
        raise ValueProblem(f"a log range needs low > 0 (got {low})")
    if step is not None and step <= 0:
        raise ValueProblem(f"must be > 0 (got {step})", at=".step")
    written = tuple(k for k in spec if k in _RANGE_KEYS)
    return SearchRange(low, high, log=log, step=step, written=written)


def _dump_search_param(spec: SearchSpec) -> Any:
    return spec.dump()


SearchParam = Annotated[
    SearchSpec,
    PlainValidator(validated(parse_search_param)),
    PlainSerializer(_dump_search_param),
]
"""A ``search`` entry as a config field: parsed at load, dumped back as written (so config
hashes and the cache keys of steps taking ``candidate.model_dump()`` do not change)."""


# --- text values (``str`` subclasses: they stay JSON-able step params and config dumps) ---------


class _Text(str):
    """Text validated by ``parse`` when conveyor.yaml is loaded, dumped as plain text."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: Any) -> _Text:
        """Subclasses validate ``value``."""
        raise NotImplementedError

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            validated(cls.parse),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


_RULE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


class GateRule(_Text):
    """A quality gate as written (``">= 0.70"``), with its operator and threshold parsed."""

    op: GateOp
    threshold: float

    @classmethod
    def parse(cls, value: Any) -> GateRule:
        """``value`` (any YAML scalar) as a rule.

        Raises:
            ValueProblem: not ``>=``, ``>``, ``<=``, ``<`` or ``==`` followed by a number.
        """
        if isinstance(value, GateRule):
            return value
        match = _RULE.match(str(value))
        if match is None:
            raise ValueProblem(
                f'{value!r} is not a gate; write e.g. ">= 0.70" (operators >= > <= < ==)'
            )
        rule = cls(value)
        rule.op = cast("GateOp", match[1])
        rule.threshold = float(match[2])
        return rule


class CronSchedule(_Text):
    """A cron expression (``"0 3 * * *"``, ``"@daily"``), checked with croniter."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: Any) -> CronSchedule:
        """``value`` as a schedule.

        Raises:
            ValueProblem: not a cron expression croniter accepts.
        """
        from croniter import croniter

        if isinstance(value, CronSchedule):
            return value
        if not isinstance(value, str) or not croniter.is_valid(value):
            raise ValueProblem(f'{value!r} is not a cron expression (e.g. "0 3 * * *" or "@daily")')
        return cls(value)

    def next_after(self, moment: float) -> float:
        """The first time of the schedule after ``moment`` (seconds since the epoch)."""
        from croniter import croniter

        return float(croniter(str(self), moment).get_next(float))


# --- alert URLs ----------------------------------------------------------------------------------


def check_alert_url(kind: str, url: str | None, env: Mapping[str, str]) -> None:
    """Whether a ``webhook``/``slack`` channel has a usable URL, as the channel will expand it
    (``${VAR}`` from ``env``, ``$$`` for a literal ``$``). An unset variable is not an error
    here (the channel reports it when it sends: a training machine need not hold the alert
    secrets), but everything that can be checked now is. The URL is never echoed: it may
    hold a token.

    Raises:
        ValueProblem: no URL, a malformed ``$`` placeholder, or not an http(s) URL.
    """
    if not url or not url.strip():
        raise ValueProblem(f"{kind} needs a url")
    template = string.Template(url)
    if not template.is_valid():
        raise ValueProblem("malformed placeholder: write ${VAR}, and $$ for a literal $")
    names = template.get_identifiers()
    if all(name in env for name in names):
        _http_url(template.substitute(env), expanded=bool(names))
        return
    literal = url.split("$", 1)[0]
    if ":" in literal:  # the scheme is written out: check it without the variables
        _http_url(literal, expanded=False, scheme_only=True)


def _http_url(url: str, *, expanded: bool, scheme_only: bool = False) -> None:
    after = " after expanding ${VAR}" if expanded else ""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueProblem(f"expected an http:// or https:// URL{after}")
    if not scheme_only and not parts.hostname:
        raise ValueProblem(f"the URL has no host{after}")
