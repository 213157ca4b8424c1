"""localstripe (a Stripe-compatible server, a test dependency) kept in memory only.

Out of the box it pickles its whole store to /tmp/localstripe.pickle on every write: each
request costs time that grows with everything created before (a benchmark measures the pickling,
not us), and two instances on one machine overwrite each other's file. This starts it with that
turned off and from an empty store:

    .venv/bin/python scripts/localstripe_server.py --port 8420
"""

from __future__ import annotations

import sys

from localstripe import resources, server


def main() -> None:
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    sys.argv = [sys.argv[0], *sys.argv[1:], "--from-scratch"]
    server.start()


if __name__ == "__main__":
    main()
