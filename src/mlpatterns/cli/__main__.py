"""``python -m mlpatterns.cli``: the ``mlpatterns`` command (how ``torchrun`` starts each rank)."""

import sys

from mlpatterns.cli import main

sys.exit(main())
