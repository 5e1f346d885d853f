"""``python -m loadkit.platform``: serve the reference platform on loopback."""

from loadkit.platform.server import main

raise SystemExit(main())
