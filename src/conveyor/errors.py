"""Every error conveyor raises on purpose.

The tree::

    ConveyorError
    ├── ConfigError (ValueError)                  conveyor.yaml missing, unreadable or invalid
    ├── DataValidationError (ValueError)          data does not meet its contract
    ├── ArtifactError
    │   ├── ArtifactNotFoundError (LookupError)   no bytes under that hash
    │   ├── ArtifactCorruptedError                bytes no longer match their hash
    │   ├── SerializationError (TypeError)        no serializer for an object / bytes unreadable
    │   └── ArtifactStorageError (OSError)        the backend failed (disk, network, permissions)
    ├── MetadataError
    │   ├── NotFoundError (LookupError)           no run / step / model version by that name
    │   └── MetadataStorageError                  the database failed (locked, unreachable, schema)
    ├── PipelineDefinitionError (ValueError)
    │   ├── CycleError                            the steps' inputs and outputs form a loop
    │   ├── MissingInputError                     an input no step produces and nobody provides
    │   └── DuplicateOutputError                  two steps produce the same output name
    ├── OrchestrationError                        one step of a run cannot run on its own yet
    ├── ExportError (ValueError)                  a line cannot be exported to that target
    │   └── MissingSdkError (ImportError)         the target's SDK (an extra) is not installed
    ├── StepError                                 a step raised: names the step, keeps the cause
    ├── RegistryError                             model versions and aliases
    │   └── ModelNotFoundError (LookupError)
    └── GateFailedError                           a model did not pass its evaluation gates

Backend errors (SQLAlchemy, fsspec, botocore) are translated into these at the store boundary and
chained (``raise ... from exc``), so callers catch conveyor errors only.
"""

from __future__ import annotations

__all__ = [
    "ArtifactCorruptedError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactStorageError",
    "ConfigError",
    "ConveyorError",
    "CycleError",
    "DataValidationError",
    "DuplicateOutputError",
    "ExportError",
    "GateFailedError",
    "MetadataError",
    "MetadataStorageError",
    "MissingInputError",
    "MissingSdkError",
    "ModelNotFoundError",
    "NotFoundError",
    "OrchestrationError",
    "PipelineDefinitionError",
    "RegistryError",
    "SerializationError",
    "StepError",
]


class ConveyorError(Exception):
    """Root of every error conveyor raises on purpose."""


class ConfigError(ConveyorError, ValueError):
    """conveyor.yaml is missing, unreadable or invalid; the message names the file and key path."""


class DataValidationError(ConveyorError, ValueError):
    """Data does not meet its schema contract; the message names the file, column and check."""


class ArtifactError(ConveyorError):
    """Base for artifact store errors."""


class ArtifactNotFoundError(ArtifactError, LookupError):
    """No artifact stored under the given hash."""


class ArtifactCorruptedError(ArtifactError):
    """The stored bytes of an artifact no longer hash to its address."""

    def __init__(self, digest: str, actual: str, location: str) -> None:
        self.digest = digest
        self.actual = actual
        self.location = location
        super().__init__(
            f"artifact {digest} at {location} is corrupted: its bytes hash to {actual}; "
            "refusing to load it"
        )


class SerializationError(ArtifactError, TypeError):
    """No serializer handles the object, or stored bytes cannot be decoded."""


class ArtifactStorageError(ArtifactError, OSError):
    """The artifact backend failed (disk, network, permissions)."""


class MetadataError(ConveyorError):
    """Base for metadata store errors."""


class NotFoundError(MetadataError, LookupError):
    """No run, step or record matches the given identifier."""


class MetadataStorageError(MetadataError):
    """The metadata database failed: unreachable, locked, or an unexpected schema."""


class PipelineDefinitionError(ConveyorError, ValueError):
    """A pipeline is wrongly defined; raised before anything runs."""


class CycleError(PipelineDefinitionError):
    """The steps' inputs and outputs form a cycle."""


class MissingInputError(PipelineDefinitionError):
    """A step needs an input that no step produces and that was not provided."""


class DuplicateOutputError(PipelineDefinitionError):
    """Two steps declare the same output name."""


class OrchestrationError(ConveyorError):
    """One step of a run cannot run on its own: its inputs are not produced yet, or the run was
    planned from another pipeline or config; the message names the run, step and dataset."""


class ExportError(ConveyorError, ValueError):
    """A line cannot be exported to that target as asked (unknown target, local stores)."""


class MissingSdkError(ExportError, ImportError):
    """An export target's SDK is not installed: names the extra that installs it."""


class StepError(ConveyorError):
    """A step raised while running; keeps the step name and the original exception."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"step {step!r} failed: {message}")


class RegistryError(ConveyorError):
    """Base for model registry errors."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model version matches the given name, version or alias."""


class GateFailedError(ConveyorError):
    """A model did not pass its evaluation gates; the message lists each failed gate."""
