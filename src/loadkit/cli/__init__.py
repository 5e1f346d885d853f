"""The parent process: the ``loadkit`` command, preflight, starting Locust and the platform."""
