"""Sub-commands beyond generate/list; each entry adds its parser to the sub-parsers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []
