"""Which model to build, and building it through the model registry (timm's create_model).

``ModelConfig`` imports no torch, so the command line can show its defaults quickly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from instrlab.errors import InstrlabError, first_line
from instrlab.registry import models


@dataclass
class ModelConfig:
    """Which registered model to build, with its keyword arguments."""

    name: str = "mel_cnn"
    params: dict[str, Any] = field(default_factory=dict)
    tta_shifts: tuple[int, ...] = ()
    """Predict with the mean logits over the input's spectrum moved by each of these mel
    bins (:class:`instrlab.models.tta.ShiftAveraged`); () predicts from the input alone."""

    def __post_init__(self) -> None:
        if not valid_shifts(self.tta_shifts):
            raise InstrlabError(f"model tta_shifts must be distinct whole bins in -32..32, got "
                                f"{self.tta_shifts!r}; e.g. --tta-shifts -4 -2 0 2 4, or none")
        self.tta_shifts = tuple(self.tta_shifts)


def valid_shifts(shifts: Any) -> bool:
    """Whether ``shifts`` can be a ``tta_shifts``: a list or tuple of distinct whole bins in
    -32..32 (a config's, or a saved model's metadata)."""
    return (isinstance(shifts, (list, tuple))
            and all(isinstance(s, int) and not isinstance(s, bool) and -32 <= s <= 32
                    for s in shifts) and len(set(shifts)) == len(shifts))


def _params_text(cfg: ModelConfig) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cfg.params.items()) or "default parameters"


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], n_classes: int) -> Any:
    """Create the model and check that features of ``input_shape`` fit it.

    Whatever the factory or a first forward pass raises becomes a one-line
    :class:`InstrlabError` naming the model and its parameters.
    """
    import torch

    with warnings.catch_warnings():  # e.g. width=0: torch warns before the error below
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        try:
            model = models.create(cfg.name, input_shape=tuple(input_shape),
                                  n_classes=n_classes, **cfg.params)
        except InstrlabError:
            raise
        except Exception as exc:
            raise InstrlabError(
                f"model {cfg.name!r} rejected its parameters ({_params_text(cfg)}): "
                f"{type(exc).__name__}: {first_line(exc, 160)}; fix the model's parameters "
                "(--model-param)"
            ) from exc
        if cfg.tta_shifts:
            from instrlab.models.tta import ShiftAveraged

            model = ShiftAveraged(model, cfg.tta_shifts)
        try:
            with torch.no_grad():
                model.eval()
                out = model(torch.zeros((2, *input_shape)))
                model.train()
        except Exception as exc:
            raise InstrlabError(
                f"model {cfg.name!r} ({_params_text(cfg)}) cannot take features of shape "
                f"{tuple(input_shape)} ({first_line(exc, 120)}); check its parameters "
                "(--model-param) or pick features that fit it (seed_cnn takes seed_image, mel_cnn "
                "takes logmel)"
            ) from exc
    if tuple(out.shape) != (2, n_classes):
        raise InstrlabError(
            f"model {cfg.name!r} returned shape {tuple(out.shape)} for 2 clips; expected "
            f"(2, {n_classes})"
        )
    return model
