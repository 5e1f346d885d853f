"""What the platform process and whoever launches it agree on (kept free of heavy imports)."""

from __future__ import annotations

from typing import Final

API_KEY_ENV: Final = "API_KEY"
"""Environment variable carrying the API key (preferred over ``--api-key``)."""
LISTENING_PREFIX: Final = "loadkit platform listening on "
"""Start of the one line printed on stdout once the server accepts connections; the URL follows."""
