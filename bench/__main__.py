"""``python -m bench``: the measurement suite (bench/suite.py)."""

import sys

from .suite import main

sys.exit(main())
