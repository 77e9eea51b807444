"""Cortex: deploy, run and autoscale machine-learning workloads."""

from cortex.version import __version__

__all__ = ["__version__"]
