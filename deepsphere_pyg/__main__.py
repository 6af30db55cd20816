"""``python -m deepsphere_pyg`` runs the ``deepsphere-pyg`` command."""

import sys

from .cli import main

sys.exit(main())
