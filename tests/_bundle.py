"""Helpers for tests that talk to a served model bundle."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from conveyor.contracts import ModelSignature

if TYPE_CHECKING:
    from pathlib import Path


def signature_columns(bundle: Path) -> list[str]:
    """The bundle's input columns in training order: what a CSV row without a header follows
    (the JSON file sorts ``columns``' keys; ``order`` keeps the training order)."""
    signature = ModelSignature.of(json.loads((bundle / "signature.json").read_text("utf-8")))
    assert signature.order, "the train line records the training order"
    return [name for name, _ in signature.ordered()]
