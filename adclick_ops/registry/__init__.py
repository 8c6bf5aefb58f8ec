"""Versioned models: the registry of each DAG, its champion pointer and history, and the safe model format."""

from adclick_ops.registry.registry import (
    Outcome,
    Registry,
    RegistryError,
    champion_stack,
    registry_location,
)
from adclick_ops.registry.serialization import (
    TRUSTED_TYPES,
    UnsafeModelError,
    dump_model,
    load_model_bytes,
)

__all__ = [
    "TRUSTED_TYPES",
    "Outcome",
    "Registry",
    "RegistryError",
    "UnsafeModelError",
    "champion_stack",
    "dump_model",
    "load_model_bytes",
    "registry_location",
]
