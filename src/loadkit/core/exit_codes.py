"""The ``loadkit`` command's exit codes, as the README documents them (CI reads them).

The one place they are defined: the run lifecycle, the CLI, ``compare`` and the worker wait all
import them from here.
"""

from __future__ import annotations

from typing import Final

EXIT_PASSED: Final = 0
"""The run completed and every applicable criterion held."""
EXIT_FAILED: Final = 1
"""A criterion failed or had no data, or the kit aborted the run."""
EXIT_INVALID: Final = 2
"""Nothing was sent: bad input, a host off the allow-list, or a failed preflight."""
EXIT_INCOMPLETE: Final = 3
"""The run did not complete and nothing failed on what was measured: stopped early, interrupted
or a lost worker; or nothing was sent because the master's workers never connected."""
EXIT_NO_WORKERS: Final = EXIT_INCOMPLETE
"""The master's workers did not all connect in time: a run that never began."""
