"""The ``loadkit`` command's exit codes, as the README documents them (CI reads them)."""

from __future__ import annotations

from typing import Final

EXIT_PASSED: Final = 0
"""Every applicable criterion held."""
EXIT_FAILED: Final = 1
"""A criterion failed or had no data, or the run was aborted, interrupted or lost a worker."""
EXIT_INVALID: Final = 2
"""Nothing was sent: bad input, a host off the allow-list, or a failed preflight."""
EXIT_NO_WORKERS: Final = 3
"""Nothing was sent: the master's workers did not all connect in time."""
