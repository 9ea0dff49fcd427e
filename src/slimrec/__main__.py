"""``python -m slimrec``: the CLI, also how torchrun starts ranks (``torchrun -m slimrec``)."""

import sys

from slimrec.cli import main

sys.exit(main())
