"""`python -m descent.tui.cli`: the same as the `descent` command."""

import sys

from descent.tui.cli import main

sys.exit(main())
