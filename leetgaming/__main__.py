"""``python -m leetgaming``: the same command as ``leetgaming``."""

from leetgaming.cli import main

raise SystemExit(main())
