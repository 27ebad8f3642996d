"""Platform modes of the model server: the routes, port, payloads and limits SageMaker, Vertex
AI and Azure ML expect of a custom container, on top of the one server (same validation,
micro-batching, metrics and prediction log).

The platforms authenticate callers themselves (AWS IAM / SigV4, Google IAM, Azure AD or
endpoint keys), so a platform mode asks for no API key; it serves the platform's routes plus
``/health``, ``/ready``, ``/metrics`` and ``/v1/model``, and not ``/v1/predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import APIRouter

PlatformName = Literal["sagemaker", "vertex", "azureml"]
PLATFORMS: tuple[PlatformName, ...] = get_args(PlatformName)
MB = 1 << 20


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    """One platform's contract, read from its environment variables.

    Attributes:
        name: sagemaker, vertex or azureml.
        port: where the platform sends requests.
        max_body_bytes: the largest request the platform forwards.
        router: the platform's routes.
        routes: their paths (metrics labels, the startup line).
        health: the route the platform probes for liveness.
    """

    name: PlatformName
    port: int
    max_body_bytes: int
    router: APIRouter
    routes: tuple[str, ...]
    health: str

    def describe(self) -> str:
        """``sagemaker (GET /ping, POST /invocations, ...)``."""
        return f"{self.name} ({', '.join(self.routes)})"


def platform_spec(name: str, env: Mapping[str, str]) -> PlatformSpec:
    """The contract of platform ``name`` with the values its environment gives.

    Raises:
        ValueError: an unknown platform, or a port or route in the environment that is not one.
    """
    from conveyor.serving.platforms import azureml, sagemaker, vertex

    builders = {"sagemaker": sagemaker.spec, "vertex": vertex.spec, "azureml": azureml.spec}
    if name not in builders:
        raise ValueError(f"platform {name!r}: choose {', '.join(PLATFORMS)}")
    return builders[name](env)


def model_dir(name: str, env: Mapping[str, str]) -> str | None:
    """Where the platform put the model files: SageMaker ``/opt/ml/model``, Azure ML
    ``$AZUREML_MODEL_DIR``, Vertex AI ``$AIP_STORAGE_URI`` (None when unset)."""
    if name == "sagemaker":
        return "/opt/ml/model"
    if name == "azureml":
        return env.get("AZUREML_MODEL_DIR") or None
    if name == "vertex":
        return env.get("AIP_STORAGE_URI") or None
    return None


def env_port(env: Mapping[str, str], variable: str, default: int) -> int:
    """``$variable`` as a TCP port, else ``default``.

    Raises:
        ValueError: set, but not a port number.
    """
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"${variable}={raw!r} is not a TCP port")
    return int(raw)


__all__ = [
    "MB",
    "PLATFORMS",
    "PlatformName",
    "PlatformSpec",
    "env_port",
    "model_dir",
    "platform_spec",
]
