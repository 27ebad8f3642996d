"""Pipeline definitions: steps, the DAG they form, and their cache keys. No I/O here."""

from __future__ import annotations

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.fingerprint import KeyParts, cache_key, key_parts, source_hash
from conveyor.pipeline.pipeline import Pipeline, pipeline
from conveyor.pipeline.step import Step, step

__all__ = [
    "KeyParts",
    "Pipeline",
    "Step",
    "StepContext",
    "cache_key",
    "key_parts",
    "pipeline",
    "source_hash",
    "step",
]
