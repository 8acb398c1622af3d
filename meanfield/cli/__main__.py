"""``python -m meanfield.cli``: the ``meanfield`` command."""

import sys

from . import main

sys.exit(main())
