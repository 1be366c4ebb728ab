"""``python -m slackrtm.testing``: the same server as ``python -m slackrtm fake-slack``.

Both serve a FakeSlack until Ctrl-C (or SIGTERM) and take the same options; see
``python -m slackrtm fake-slack --help``.
"""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``slackrtm fake-slack`` with these arguments; returns its exit code."""
    # The command line lives with the client; FakeSlack itself imports none of it.
    from slackrtm._cli.main import main as cli

    return cli(["fake-slack", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
