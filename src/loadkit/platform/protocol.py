"""What the platform process and whoever launches it agree on (kept free of heavy imports)."""

from __future__ import annotations

from typing import Final

API_KEY_ENV: Final = "API_KEY"
"""Environment variable carrying the API key (preferred over ``--api-key``)."""
PARENT_PID_ENV: Final = "LOADKIT_PLATFORM_PARENT_PID"
"""Set by the launcher: the platform exits when that process is gone (even after a SIGKILL,
which gives the parent no chance to stop it), so no orphaned platform keeps a port."""
LISTENING_PREFIX: Final = "loadkit platform listening on "
"""Start of the one line printed on stdout once the server accepts connections; the URL follows."""
