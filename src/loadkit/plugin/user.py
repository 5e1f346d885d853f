"""The base class of every scenario's user: the platform's address, auth and timeouts in one place.

Scenario files subclass ``PlatformUser`` and only describe behaviour. Importing this module also
loads the kit's Locust plugin (settings, embedded platform, verdict), so a locustfile that uses
``PlatformUser`` gets all of it with plain ``locust -f``.

Its HTTP client is Locust's ``FastHttpUser`` unless ``LOADKIT_HTTP_CLIENT=lean`` picks the kit's
lean client (``loadkit.leanclient``): the same knobs, calls and request events, at about half
the CPU per request. A base class is fixed when the class statement runs, so the choice is read
here, at import, from the same sources as the settings; a bad value is reported by the plugin's
``init`` (one line, exit 2), like every other setting.
"""

from __future__ import annotations

import itertools

from locust import FastHttpUser, User
from locust.env import Environment

from loadkit.leanclient import LeanHttpUser
from loadkit.plugin import setup as locust_plugin
from loadkit.plugin.locust_adapter import worker_index
from loadkit.plugin.measurement import record_side_row
from loadkit.settings import SettingsError, http_client_choice
from loadkit.workload.datagen import RUN_TOKEN, USER_INDEX_LIMIT, DataFactory, Namespace

_user_numbers = itertools.count()


def _http_user_class() -> type[User]:
    try:
        choice = http_client_choice()
    except SettingsError:
        return FastHttpUser  # the plugin's init loads the settings and stops on the same error
    return LeanHttpUser if choice == "lean" else FastHttpUser


HttpUserClass: type[User] = _http_user_class()
"""``PlatformUser``'s base: ``FastHttpUser``, or ``LeanHttpUser`` (``LOADKIT_HTTP_CLIENT``)."""


class PlatformUser(HttpUserClass):  # type: ignore[misc,valid-type]
    """An HTTP user aimed at the platform, with the API key on every request.

    FastHttpUser rather than HttpUser: it spends about a quarter of the CPU per request; the lean
    client less than half of FastHttpUser's again (docs/performance.md). Both read the knobs
    below before they build their client.
    """

    abstract = True

    def __init__(self, environment: Environment) -> None:
        settings = locust_plugin.settings_of(environment)
        # The client reads these class-level knobs when it is built, so they are set on the
        # instance before super().__init__().
        self.network_timeout = settings.request_timeout_s
        self.connection_timeout = settings.connect_timeout_s
        self.insecure = not settings.verify_tls
        self.default_headers = settings.auth_headers()
        super().__init__(environment)
        self.settings = settings
        self.data = DataFactory(
            Namespace(
                RUN_TOKEN, worker_index(environment.runner), next(_user_numbers) % USER_INDEX_LIMIT
            )
        )

    def record_timing(
        self,
        request_type: str,
        name: str,
        response_time_ms: float,
        response_length: int = 0,
        exception: BaseException | None = None,
    ) -> None:
        """Record a timing of the kit's own (``JOB bulk import: upload to completed``): its own
        row in every table, outside the request totals and rates."""
        record_side_row(
            self.environment, request_type, name, response_time_ms, response_length, exception
        )
