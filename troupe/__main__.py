"""`python -m troupe …` is the same as `troupe …`."""

import sys

from troupe.cli import main

sys.exit(main())
