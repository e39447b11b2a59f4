"""``python -m cppjax.cli ...``: the same as the ``cppjax`` command."""

import sys

from cppjax.cli.main import main

sys.exit(main())
