"""``python -m sdtheory.cli``: the ``sdtheory`` command."""

import sys

from sdtheory.cli import main

sys.exit(main())
