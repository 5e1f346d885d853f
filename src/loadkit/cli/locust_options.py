"""Checking the options meant for Locust before anything starts, with Locust's own parser.

Options after ``--`` (and ``LOCUST_*`` variables, ``locust.conf``, the plugin's ``LOADKIT_*``
option variables) are Locust's to read, and used to be read only by the Locust child: after the
preflight had called the target and the results folder was made, with Locust's multi-line usage
text. The parent cannot import Locust (``import locust`` patches the standard library and loads
its web and runner modules), so it runs Locust's real parser, with the kit's plugin options
added, in a short child process: about a second, and only when there is something to read.

The child prints one JSON line of the values the kit bounds (host, users, rates, run time, web
host ...), or one line naming the bad option and exits 2.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from loadkit.settings import Settings

#: Seconds the parser child may take (importing Locust takes about one).
PARSE_TIMEOUT_S: Final = 30.0
#: Locust's own configuration files (``locust.argument_parser.DEFAULT_CONFIG_FILES``).
LOCUST_CONFIG_FILES: Final = ("~/.locust.conf", "locust.conf")
#: Parsed options reported back to the parent.
REPORTED: Final = (
    "host", "run_time", "num_users", "spawn_rate", "web_host", "web_port", "processes",
    "max_in_flight", "rate", "rate_stage", "headless", "master", "worker", "expect_workers",
    "web_base_path",
)  # fmt: skip

_PROGRAM: Final = """
import json, sys
from locust import argument_parser, events
import loadkit.plugin.setup  # the kit's plugin options, as a locustfile would add them

def one_line_exit(status=0, message=None):
    if message:
        text = " ".join(message.replace("\\nDid you mean", " (did you mean").split())
        if "(did you mean" in text:
            text += ")"
        print(text.removeprefix("locust: error: "), file=sys.stderr)
    sys.exit(status)

parser = argument_parser.get_parser()
parser.prog = 'locust'
parser.exit = one_line_exit
options = parser.parse_args(sys.argv[1:])
fields = json.loads(%r)
print(json.dumps({name: getattr(options, name, None) for name in fields}, default=str))
"""


class LocustOptionError(ValueError):
    """An option Locust's parser refuses; the message is Locust's, on one line."""


@dataclass(frozen=True)
class LocustOptions:
    """What Locust's parser made of the options (None where it was not asked to parse)."""

    values: dict[str, Any]

    def get(self, name: str) -> Any:
        return self.values.get(name)


def needs_parsing(extra: Sequence[str], environ: dict[str, str] | None = None) -> bool:
    """Whether Locust's parser has anything of the user's to read: options after ``--``,
    ``LOCUST_*`` variables, the plugin's ``LOADKIT_*`` option variables (those that are not
    settings), or a Locust configuration file."""
    if extra:
        return True
    env = os.environ if environ is None else environ
    settings_vars = _settings_variables()
    for name in env:
        if name.startswith("LOCUST_"):
            return True
        if name.startswith("LOADKIT_") and name not in settings_vars and name not in _KIT_INTERNAL:
            return True
    if any(Path(p).expanduser().is_file() for p in LOCUST_CONFIG_FILES):
        return True
    pyproject = Path("pyproject.toml")
    try:
        return pyproject.is_file() and "[tool.locust]" in pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def parse_locust_options(args: Sequence[str]) -> LocustOptions:
    """Run Locust's parser on ``args`` in a child; :class:`LocustOptionError` if it refuses."""
    # Locust's parser also reads LOCUST_* variables, and the kit's options LOADKIT_* ones: the
    # answer depends on them as much as on the arguments.
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)))
    return _parse(tuple(args), env)


_ENV_PREFIXES = ("LOCUST_", "LOADKIT_")


@functools.lru_cache(maxsize=8)
def _parse(args: tuple[str, ...], _env: tuple[tuple[str, str], ...]) -> LocustOptions:
    program = _PROGRAM % json.dumps(list(REPORTED))
    try:
        done = subprocess.run(
            [sys.executable, "-c", program, *args],
            capture_output=True,
            text=True,
            timeout=PARSE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise LocustOptionError(
            f"Locust's parser did not answer within {PARSE_TIMEOUT_S:g} s"
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        problem = done.stderr.strip().splitlines()
        text = problem[-1] if problem else f"Locust's parser exited with code {done.returncode}"
        raise LocustOptionError(f"Locust refused an option: {text}")
    if not lines:  # --help, --version: Locust printed and left; nothing to check
        return LocustOptions({})
    return LocustOptions(json.loads(lines[-1]))


def _settings_variables() -> frozenset[str]:
    from loadkit.settings import env_name

    return frozenset(env_name(field) for field in Settings.model_fields)


#: Variables the kit itself sets for its children (not user options).
_KIT_INTERNAL: Final = frozenset(
    {"LOADKIT_OWNER_PID", "LOADKIT_EXCEED_LIMITS", "LOADKIT_LOCUSTFILES_DIR", "LOADKIT_SHAPES_DIR",
     "LOADKIT_PLATFORM_PARENT_PID"}
)  # fmt: skip
