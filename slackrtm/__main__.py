"""``python -m slackrtm``: the command line (demo, tail, send, fake-slack); see ``--help``."""

from __future__ import annotations

import sys

from slackrtm._cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
