"""gate: a consent-gating reverse proxy."""

__version__ = "0.1.0"
