"""``python -m instrlab.cli``: the same as the ``instrlab`` command."""

import sys

from instrlab.cli import main

sys.exit(main())
