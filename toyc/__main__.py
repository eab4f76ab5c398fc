"""`python -m toyc` is the `toyc` command."""

import sys

from toyc.cli import main

sys.exit(main())
