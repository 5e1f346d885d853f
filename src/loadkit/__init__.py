"""loadkit: a Locust-based load-testing kit for the AI calling platform's HTTP API."""

__version__ = "0.1.0"
