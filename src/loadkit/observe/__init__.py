"""Reading the platform's state beside the load: queue and metrics sources."""
