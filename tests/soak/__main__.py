"""``python -m tests.soak --minutes N``: see :mod:`tests.soak.runner`."""

from __future__ import annotations

import sys

from tests.soak.runner import main

if __name__ == "__main__":
    sys.exit(main())
