"""``python -m loadkit.platform``: serve the reference platform on loopback.

gevent patches the standard library before anything else is imported, so that every blocking
call the platform makes (Redis, with ``--redis-url``) yields to the other greenlets instead of
stalling the server.
"""

from gevent import monkey

monkey.patch_all()

from loadkit.platform.server import main  # noqa: E402

raise SystemExit(main())
