"""Pure code: no Locust, no I/O."""
