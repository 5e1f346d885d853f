"""The one collector: every request counted once, on one clock, merged across workers."""
