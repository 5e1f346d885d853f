"""``LeanHttpUser``: a Locust user whose ``client`` is the lean client (``LeanSession``).

The same knobs as ``FastHttpUser``, with the same names, so a scenario written for one runs on
the other: ``network_timeout`` and ``connection_timeout`` (s), ``insecure`` (no certificate
check), ``default_headers`` (sent with every request), ``concurrency`` (connections per origin;
a request waits for a free one beyond it). Set them on the class, or on the instance before
``super().__init__()`` (the client is built there).
"""

from __future__ import annotations

from typing import ClassVar

from locust import User
from locust.env import Environment
from locust.exception import LocustError

from loadkit.leanclient.client import LeanSession


class LeanHttpUser(User):
    """A Locust user with a ``LeanSession`` as ``self.client`` (see :mod:`loadkit.leanclient`)."""

    abstract = True
    network_timeout: float = 60.0
    connection_timeout: float = 60.0
    insecure: bool = True
    default_headers: ClassVar[dict[str, str] | None] = None
    concurrency: int = 10

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise LocustError(
                "You must specify the base host. Either in the host attribute in the User "
                "class, or on the command line using the --host option."
            )
        self.client = LeanSession(
            self.host,
            environment.events.request,
            self,
            headers=self.default_headers,
            connection_timeout=self.connection_timeout,
            network_timeout=self.network_timeout,
            concurrency=self.concurrency,
            insecure=self.insecure,
        )
