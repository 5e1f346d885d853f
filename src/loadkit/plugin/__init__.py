"""Code that runs inside Locust: listeners, user classes, shapes, web UI tabs."""
