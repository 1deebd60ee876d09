"""``python -m lens.sim``: run the simulated LLM server (``--protocol`` picks the API)."""

import sys

from lens.sim.server import main

sys.exit(main())
