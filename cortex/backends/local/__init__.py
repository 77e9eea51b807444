"""The local backend: replicas as local process groups (DESIGN "Local backend specifics")."""

from cortex.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
