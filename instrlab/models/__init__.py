"""Models: :mod:`instrlab.models.factory` builds any registered one.

Built-ins (one file each, registered in :data:`instrlab.registry.models` on import, which
the registry does on first use):

- ``seed_cnn``: the seed experiment's CNN on 400x400 spectrogram images.
- ``mel_cnn``: the fast default, a 1-D CNN over time with mel bins as channels.
"""
