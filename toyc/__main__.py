"""`python -m toyc` is the `toyc` command."""

import sys

from toyc.client import main

sys.exit(main())
