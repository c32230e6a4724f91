"""``python -m rnnkit`` (and ``torchrun -m rnnkit``) run the command line."""

import sys

from .cli.main import main

sys.exit(main())
