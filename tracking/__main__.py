"""``python -m densecap.tracking`` (the ``densecap`` command)."""

import sys

from .cli import main

sys.exit(main())
