"""The served model: a loaded, hash-verified version, and the watcher that swaps it when its
alias moves."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import ArtifactStorageError, ConveyorError, MetadataStorageError
from conveyor.registry import versions
from conveyor.serving.contract import InputContract, UnknownPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from conveyor.contracts import ModelSignature
    from conveyor.registry.bundle import Bundle
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import ModelVersionRecord, RegistryStore

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
    metadata: RegistryStore,
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
        ConfigError: the version has no signature (registered outside the train line), or one
            no input contract can be built from.
    """
    from conveyor.errors import ConfigError

    record = versions.resolve(metadata, ref)
    signature = versions.signature_of(record)
    if signature is None:
        raise ConfigError(
            f"{record.name}:{record.version} has no input signature; only models registered "
            "by the train line (or with a signature) can be served"
        )
    contract = _contract(record, signature, unknown=unknown, max_records=max_records)
    model = artifacts.get(record.digest, metadata.artifact_kind(record.digest))
    return LoadedModel(record, model, contract)


def load_bundle(bundle: Bundle, *, unknown: UnknownPolicy, max_records: int) -> LoadedModel:
    """The bundle's model (its bytes re-verified against the manifest) and input contract.

    Raises:
        BundleError: ``model.joblib`` no longer matches the manifest.
        ConfigError: no input contract can be built from the bundle's signature.
    """
    record = bundle.record()
    contract = _contract(record, bundle.signature, unknown=unknown, max_records=max_records)
    return LoadedModel(record, bundle.load_model(), contract)


def fixed_watcher(loaded: LoadedModel) -> ModelWatcher:
    """A watcher that serves ``loaded`` for good (a bundle: no alias to follow)."""

    def no_alias(name: str, alias: str) -> int:  # pragma: no cover - a pinned ref never asks
        raise AssertionError(f"a fixed model has no alias ({name}@{alias})")

    return ModelWatcher(lambda _ref: loaded, no_alias, loaded.ref)


def _contract(
    record: ModelVersionRecord,
    signature: ModelSignature,
    *,
    unknown: UnknownPolicy,
    max_records: int,
) -> InputContract:
    from conveyor.errors import ConfigError

    try:
        return InputContract(signature, unknown=unknown, max_records=max_records)
    except ConveyorError:
        raise
    except Exception as exc:  # a signature written by hand or by an older conveyor
        raise ConfigError(
            f"{record.name}:{record.version}: its input signature cannot be served: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


# A version whose load fails with one of these is retried at the next tick (the store may be
# briefly unreachable); any other failure is a property of the version and refuses it.
TRANSIENT = (ArtifactStorageError, MetadataStorageError, OSError)


class ModelWatcher:
    """Holds the current model and, for ``NAME@ALIAS``, follows the alias.

    :meth:`poll` (run every second by a :class:`~conveyor.serving.supervisor.Supervised`
    task) resolves the alias; when it points elsewhere, the new version is loaded and verified
    off the request path, then swapped in with one reference assignment. Requests already
    holding the old model finish with it.

    A version that cannot be served is *refused*: the server keeps serving the old one, says
    why in :attr:`last_error` (``/v1/model``, ``/ready``) and calls ``on_refuse`` once. That
    covers a version whose inputs differ from the running one (the OpenAPI schema and request
    validation are built at start), a corrupted artifact, a version without a signature, and
    any exception while loading it. A storage error is not a refusal: it propagates, and the
    next poll tries again.
    """

    def __init__(
        self,
        load: Callable[[str], LoadedModel],
        resolve_alias: Callable[[str, str], int],
        ref: str,
        *,
        on_swap: Callable[[LoadedModel, LoadedModel], None] | None = None,
        on_refuse: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self._load = load
        self._resolve_alias = resolve_alias
        self.ref = ref
        self._on_swap = on_swap
        self._on_refuse = on_refuse
        self.current = load(ref)
        self.last_error: str | None = None
        self._refused: int | None = None  # the version last refused (not retried)
        name, which = versions.parse_ref(ref)
        self._alias = (name, which) if isinstance(which, str) else None

    def poll(self) -> None:
        """Swap the model if its alias moved.

        Raises:
            MetadataStorageError, ArtifactStorageError, OSError: the stores cannot be reached
                (nothing changed; the caller retries).
        """
        if self._alias is None:
            return
        name, alias = self._alias
        version = self._resolve_alias(name, alias)
        if version in (self.current.record.version, self._refused):
            if version == self.current.record.version:
                self.last_error = None  # moved back: nothing is refused any more
                self._refused = None
            return
        ref = f"{name}:{version}"
        try:
            fresh = self._load(ref)
        except TRANSIENT:
            raise
        except Exception as exc:
            self._refuse(name, alias, version, f"{ref} cannot be served: {_reason(exc)}")
            return
        old = self.current
        if not fresh.contract.same_inputs(old.contract):
            self._refuse(
                name,
                alias,
                version,
                f"{fresh.ref}'s inputs differ from {old.ref}; restart the server to serve it",
            )
            return
        self.current = fresh
        self.last_error = None
        self._refused = None
        log.info("swapped %s -> %s (%s@%s)", old.ref, fresh.ref, name, alias)
        if self._on_swap is not None:
            self._on_swap(old, fresh)

    def _refuse(self, name: str, alias: str, version: int, why: str) -> None:
        self.last_error = f"{name}@{alias} moved to version {version}, not served: {why}"
        self._refused = version
        log.error("%s (still serving %s)", self.last_error, self.current.ref)
        if self._on_refuse is not None:
            self._on_refuse(name, version, self.last_error)


def _reason(exc: Exception) -> str:
    """One line for a load failure: conveyor's own message, else the exception's type too."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {text}"


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON)."""
    return value.item() if hasattr(value, "item") else value
