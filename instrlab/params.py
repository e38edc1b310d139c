"""Flattening typed configs into MLflow's flat ``a.b.c`` parameters."""

from __future__ import annotations

from typing import Any


def flat_params(prefix: str, params: dict[str, Any]) -> dict[str, Any]:
    """``{prefix}.{key}`` parameters (``key`` alone for an empty prefix), nested dicts
    flattened with dots."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flat_params(name, value))
        else:
            out[name] = value
    return out
