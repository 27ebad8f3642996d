"""Cache keys: hash(step source + parameters + input artifact hashes + conveyor version)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from conveyor.pipeline.step import Step


@functools.cache
def source_hash(func: Callable[..., Any]) -> str:
    """SHA-256 of a function's source (dedented), or of its bytecode when no source exists."""
    try:
        text = textwrap.dedent(inspect.getsource(func))
        data = text.encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        data = code.co_code + repr(code.co_consts).encode() if code else repr(func).encode()
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing: sorted keys; non-JSON values by their repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def cache_key(step: Step, input_digests: Mapping[str, str], version: str) -> str:
    """The key under which a successful execution of ``step`` can be reused.

    Args:
        step: the step.
        input_digests: argument name -> SHA-256 of the artifact fed to it.
        version: conveyor's version (a new version invalidates every cache entry).
    """
    payload = {
        "source": source_hash(step.func),
        "outputs": list(step.outputs),
        "params": canonical_json(dict(step.params)),
        "inputs": dict(sorted(input_digests.items())),
        "conveyor": version,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
