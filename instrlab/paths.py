"""Where instrlab keeps what it builds: the one cache directory."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_VARIABLE = "INSTRLAB_CACHE"


def cache_dir() -> Path:
    """Where datasets go by default: $INSTRLAB_CACHE, else $XDG_CACHE_HOME/instrlab."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "instrlab"
