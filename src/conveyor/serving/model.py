"""The served model: a loaded, hash-verified version, and the watcher that swaps it when its
alias moves."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.registry import versions
from conveyor.serving.contract import InputContract, UnknownPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ModelVersionRecord, SqlMetadataStore

log = logging.getLogger("conveyor.serving")


@dataclass(frozen=True, slots=True)
class Predictions:
    """What the model said for a batch of rows."""

    labels: list[Any]
    classes: list[Any] | None = None
    probabilities: np.ndarray[Any, Any] | None = None  # rows x classes

    def __len__(self) -> int:
        return len(self.labels)

    def slice(self, start: int, stop: int) -> Predictions:
        """Rows ``start:stop``."""
        proba = None if self.probabilities is None else self.probabilities[start:stop]
        return Predictions(self.labels[start:stop], self.classes, proba)

    def probability_dicts(self) -> list[dict[str, float]] | None:
        """Per row ``{class: probability}`` (None for regression)."""
        if self.probabilities is None or self.classes is None:
            return None
        names = [str(c) for c in self.classes]
        return [dict(zip(names, row, strict=True)) for row in self.probabilities.tolist()]


@dataclass(slots=True)
class LoadedModel:
    """A model version ready to predict: its object, record and input contract."""

    record: ModelVersionRecord
    model: Any
    contract: InputContract
    loaded_at: float = field(default_factory=time.time)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.record.name}:{self.record.version}"

    def predict(self, frame: pd.DataFrame) -> Predictions:
        """Labels (and class probabilities when the model has them) for each row of ``frame``.

        The label is the most probable class, which is what ``predict`` gives for sklearn,
        LightGBM and XGBoost classifiers; one call computes both.
        """
        import numpy as np

        if self.contract.task == "classification" and hasattr(self.model, "predict_proba"):
            proba = np.asarray(self.model.predict_proba(frame), dtype="float64")
            classes = list(self.model.classes_)
            labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)].tolist()
            return Predictions([_plain(v) for v in labels], [_plain(c) for c in classes], proba)
        return Predictions([_plain(v) for v in np.asarray(self.model.predict(frame)).tolist()])


def load_version(
    metadata: SqlMetadataStore,
    artifacts: AbstractArtifactStore,
    ref: str,
    *,
    unknown: UnknownPolicy,
    max_records: int,
) -> LoadedModel:
    """Resolve ``ref``, verify and load its artifact, and build its input contract.

    Raises:
        ModelNotFoundError: no such model, version or alias.
        ArtifactCorruptedError: the stored bytes do not match the registered hash.
        ConfigError: the version has no signature (registered outside the train line).
    """
    from conveyor.errors import ConfigError

    record = versions.resolve(metadata, ref)
    if not record.signature or "columns" not in record.signature:
        raise ConfigError(
            f"{record.name}:{record.version} has no input signature; only models registered "
            "by the train line (or with a signature) can be served"
        )
    model = artifacts.get(record.digest, metadata.artifact_kind(record.digest))
    contract = InputContract(record.signature, unknown=unknown, max_records=max_records)
    return LoadedModel(record, model, contract)


class ModelWatcher:
    """Holds the current model and, for ``NAME@ALIAS``, follows the alias.

    A background thread polls the alias every ``interval`` seconds; when it points elsewhere,
    the new version is loaded and verified off the request path, then swapped in with one
    reference assignment. Requests already holding the old model finish with it. A version
    whose inputs differ from the running one is not swapped in (the OpenAPI schema and request
    validation are built at start): the server keeps serving and logs why.

    ``on_poll`` runs on every tick (the server refreshes its API keys there).
    """

    def __init__(
        self,
        load: Callable[[str], LoadedModel],
        resolve_alias: Callable[[str, str], int],
        ref: str,
        *,
        interval: float = 1.0,
        on_poll: Callable[[], None] | None = None,
        on_swap: Callable[[LoadedModel, LoadedModel], None] | None = None,
    ) -> None:
        self._load = load
        self._resolve_alias = resolve_alias
        self.ref = ref
        self.interval = interval
        self._on_poll = on_poll
        self._on_swap = on_swap
        self.current = load(ref)
        self.last_error: str | None = None
        self._refused: int | None = None  # a version not swapped in (inputs differ)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        name, which = versions.parse_ref(ref)
        self._alias = (name, which) if isinstance(which, str) else None

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="conveyor-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """One tick: refresh (keys), then swap the model if its alias moved."""
        try:
            if self._on_poll is not None:
                self._on_poll()
            if self._alias is not None:
                self._follow(*self._alias)
        except ConveyorError as exc:  # the store may be briefly unreachable: keep serving
            self.last_error = str(exc)
            log.warning("watcher: %s (still serving %s)", exc, self.current.ref)

    def _follow(self, name: str, alias: str) -> None:
        version = self._resolve_alias(name, alias)
        if version in (self.current.record.version, self._refused):
            return
        fresh = self._load(f"{name}:{version}")
        old = self.current
        if not fresh.contract.same_inputs(old.contract):
            self.last_error = (
                f"{name}@{alias} moved to {fresh.ref}, whose inputs differ from {old.ref}; "
                "restart the server to serve it"
            )
            log.error("watcher: %s", self.last_error)
            self._refused = version
            return
        self.current = fresh
        self.last_error = None
        log.info("swapped %s -> %s (%s@%s)", old.ref, fresh.ref, name, alias)
        if self._on_swap is not None:
            self._on_swap(old, fresh)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON)."""
    return value.item() if hasattr(value, "item") else value
