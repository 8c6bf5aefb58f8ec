"""Versioned models: the registry of each DAG, its champion pointer and history, and the model format (ONNX)."""

from adclick_ops.registry.registry import (
    Outcome,
    Registry,
    RegistryError,
    champion_stack,
    registry_location,
)
from adclick_ops.registry.serialization import (
    FORMAT,
    OnnxModel,
    UnsafeModelError,
    load_model_bytes,
)

__all__ = [
    "FORMAT",
    "OnnxModel",
    "Outcome",
    "Registry",
    "RegistryError",
    "UnsafeModelError",
    "champion_stack",
    "load_model_bytes",
    "registry_location",
]
