"""``python -m loadkit.cli``: the ``loadkit`` command."""

from loadkit.cli.main import main

raise SystemExit(main())
