"""Built-in models; importing this package registers them in :data:`instrlab.registry.models`.

- ``seed_cnn``: the seed experiment's CNN on 400x400 spectrogram images.
- ``mel_cnn``: the fast default, a 1-D CNN over time with mel bins as channels.
"""

from __future__ import annotations

from instrlab.models import mel_cnn, seed_cnn

__all__ = ["mel_cnn", "seed_cnn"]
