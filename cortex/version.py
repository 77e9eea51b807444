"""The one version string: the CLI sends it, the operator checks it (SPEC 10.2)."""

__version__ = "0.1.0"
