"""What every platform mode shares: records or a CSV table through the server's one input
contract and micro-batcher, and the ``{"predictions": [...]}`` answer.

Platforms differ in routes, payload shapes and limits only; validation, batching, metrics and
the prediction log are the registry server's own (:mod:`conveyor.serving.routes.predict`).
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from conveyor.errors import DataValidationError
from conveyor.serving.errors import ApiError, invalid_fields
from conveyor.serving.routes._json import load_json, validate_payload
from conveyor.serving.routes.predict import unscorable

if TYPE_CHECKING:
    from fastapi import Request

    from conveyor.serving.contract import InputContract
    from conveyor.serving.deps import ServingState
    from conveyor.serving.model import LoadedModel, Predictions

CSV = "text/csv"
JSON = "application/json"


def media_type(request: Request, header: str = "content-type") -> str:
    """The media type of a header without parameters, lower case (``""`` when absent)."""
    return request.headers.get(header, "").split(";")[0].strip().lower()


def is_ready(state: ServingState) -> bool:
    """A verified model is loaded and no background task is stale (as ``/ready``)."""
    return not any(task.status().stale for task in state.tasks)


def load_body(body: bytes, contract: InputContract, *, expected: str) -> Any:
    """A JSON body, parsed with the server's bounds (see :func:`load_json`)."""
    return load_json(body, contract, expected=expected)


def as_records(instances: Any, contract: InputContract, *, name: str) -> list[Any]:
    """Instances as records: an object is one record; a list is its values in the signature's
    column order (every column, or the ones the model uses); anything else is left for the
    validation to name.

    Raises:
        ApiError: 422 when ``instances`` is not a list, or a list instance has the wrong length
            (the location is ``name.INDEX``).
    """
    if not isinstance(instances, list):
        raise invalid_fields([{"loc": [name], "msg": "expected a list of instances"}])
    required = [r.name for r in contract.rules if r.required]
    records: list[Any] = []
    for i, item in enumerate(instances):
        if not isinstance(item, list):
            records.append(item)
        elif len(item) == len(contract.columns):
            records.append(dict(zip(contract.columns, item, strict=True)))
        elif len(item) == len(required):
            records.append(dict(zip(required, item, strict=True)))
        else:
            raise invalid_fields([{"loc": [name, i], "msg": _arity(len(item), contract)}])
    return records


async def predict_records(
    state: ServingState, records: list[Any], rid: str, *, name: str
) -> tuple[LoadedModel, Predictions]:
    """Validate ``records`` as ``/v1/predict`` does, then predict them micro-batched.

    Raises:
        ApiError: 422 naming each bad field as ``name.INDEX.FIELD``; 422 when the model
            refuses valid-looking records.
    """
    contract = state.watcher.current.contract
    try:
        valid = validate_payload({"records": records}, contract)
    except ApiError as exc:
        raise renamed(exc, name) from None
    return await _predict(state, contract.columns_of(valid), len(valid), rid)


async def predict_csv(
    state: ServingState, body: bytes, rid: str
) -> tuple[LoadedModel, Predictions]:
    """Read a CSV body (see :func:`read_csv`), validate it as ``/v1/predict/file`` does, then
    predict it micro-batched.

    Raises:
        ApiError: 400 unreadable, 422 invalid (the message names the line and column).
    """
    contract = state.watcher.current.contract
    frame, first_line = read_csv(body, contract)
    source = f"CSV body (row 0 is line {first_line})"
    try:
        conformed = contract.conform(frame, source=source)
    except DataValidationError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from None
    columns = {c: conformed[c].tolist() for c in contract.columns}
    return await _predict(state, columns, len(conformed), rid)


def read_csv(body: bytes, contract: InputContract) -> tuple[Any, int]:
    """A CSV body as a table of the contract's columns, and the line its first row is on.

    The first line is a header when its cells are column names (every column the model uses,
    in any order); otherwise every line is a row whose values are in the signature's column
    order (every column, or the ones the model uses), as SageMaker batch transform sends them.

    Raises:
        ApiError: 400 not UTF-8, empty, or a line with the wrong number of values.
    """
    import pandas as pd

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "unreadable_csv", "the CSV body is not UTF-8 text") from None
    lines = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1) if row]
    if not lines:
        raise ApiError(400, "unreadable_csv", "the CSV body has no rows")
    required = [r.name for r in contract.rules if r.required]
    header = [cell.strip() for cell in lines[0][1]]
    if set(required) <= set(header) and len(set(header)) == len(header):
        names, rows = header, lines[1:]
    else:
        names = contract.columns if len(header) == len(contract.columns) else required
        rows = lines
    for n, row in rows:
        if len(row) != len(names):
            why = (
                f"{len(row)} values where the header names {len(names)}"
                if names is header
                else _arity(len(row), contract)
            )
            raise ApiError(400, "unreadable_csv", f"line {n}: {why}")
    if not rows:
        raise ApiError(400, "unreadable_csv", "the CSV body has a header but no rows")
    data = "\n".join(_line(row) for _, row in rows)
    frame = pd.read_csv(io.StringIO(data), header=None, names=names, skip_blank_lines=False)
    return frame, rows[0][0]


def prediction_items(predictions: Predictions) -> list[Any]:
    """One entry per record: the label, or ``{"label", "probabilities"}`` for a classifier
    that gives probabilities."""
    probabilities = predictions.probability_dicts()
    if probabilities is None:
        return list(predictions.labels)
    return [
        {"label": label, "probabilities": proba}
        for label, proba in zip(predictions.labels, probabilities, strict=True)
    ]


def csv_lines(predictions: Predictions) -> str:
    """One line per record, no header: the label, then one probability per class (in the
    model's class order, as ``/v1/model`` and JSON answers name them)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    proba = predictions.probabilities
    for i, label in enumerate(predictions.labels):
        writer.writerow([label, *([] if proba is None else [f"{p:.17g}" for p in proba[i]])])
    return out.getvalue()


def renamed(error: ApiError, name: str) -> ApiError:
    """``error`` with field locations under ``records`` moved under ``name`` (the platform's
    word for the list: ``instances``, ``data``)."""
    if not error.fields or name == "records":
        return error
    fields = [
        {"loc": [name, *f["loc"][1:]] if f["loc"][:1] == ["records"] else f["loc"], "msg": f["msg"]}
        for f in error.fields
    ]
    total = _total(error.message, len(fields))
    return invalid_fields(fields, total=total)


async def _predict(
    state: ServingState, columns: dict[str, list[Any]], n_rows: int, rid: str
) -> tuple[LoadedModel, Predictions]:
    assert state.batcher is not None
    try:
        return await state.batcher.predict(columns, n_rows, rid)
    except ValueError as exc:  # the model's own input checks
        raise unscorable(exc) from None


def _arity(found: int, contract: InputContract) -> str:
    required = [r.name for r in contract.rules if r.required]
    shown = ", ".join(contract.columns)
    optional = len(contract.columns) - len(required)
    alt = f" (or {len(required)} without the {optional} it does not use)" if optional else ""
    return f"{found} values where the model takes {len(contract.columns)}{alt}, in order: {shown}"


def _line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def _total(message: str, shown: int) -> int:
    """How many problems the message counted (``(and N more)`` after the first three)."""
    if "(and " in message and message.endswith(" more)"):
        tail = message.rsplit("(and ", 1)[1].removesuffix(" more)")
        if tail.isdigit():
            return 3 + int(tail)
    return shown
