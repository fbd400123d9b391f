"""Allow ``python -m netlens``."""

import sys

from netlens.cli import main

sys.exit(main())
