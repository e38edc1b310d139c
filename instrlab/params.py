"""Flattening typed configs into MLflow's flat ``a.b.c`` parameters."""

from __future__ import annotations

from typing import Any


def flat_params(prefix: str, params: dict[str, Any]) -> dict[str, Any]:
    """``{prefix}.{key}`` parameters, nested dicts flattened with dots."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(flat_params(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = value
    return out
