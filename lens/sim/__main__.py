"""``python -m lens.sim``: run the simulated OpenAI-compatible server."""

import sys

from lens.sim.server import main

sys.exit(main())
