"""Parsed scores kept as JSON under the dataset cache (``$INSTRLAB_CACHE``).

Parsing is the slow part of a score source (music21's corpus, the user's MIDI files) and
every process of a dataset build would repeat it; a cache file is named by what decides
its content, written whole or not at all, and read back as plain JSON: no code runs from
it, and an unreadable one is parsed again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

from instrlab.paths import cache_dir


def cached_json(name: str, make: Callable[[], Any],
                valid: Callable[[Any], bool] = lambda data: True) -> Any:
    """``make()``'s JSON-able result, kept as ``$INSTRLAB_CACHE/NAME``; a cached value is
    returned as the file reads back (lists, not tuples), and so is a fresh one, so that a
    parse and a cache hit look alike. A file that does not read back, or that ``valid``
    refuses, is made again."""
    path = cache_dir() / name
    try:
        data = json.loads(path.read_text())
        if valid(data):
            return data
    except (OSError, ValueError):
        pass
    data = json.loads(json.dumps(make()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(data, f)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)  # atomic: a reader sees all of it or nothing
    return data
