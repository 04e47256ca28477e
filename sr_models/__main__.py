"""``python -m sr_models COMMAND``: the command line, which lives in :mod:`sr_models.cli`.

``main`` is also the ``sr-models`` console script's entry point.
"""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
