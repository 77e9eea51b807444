"""Pins the public surface of ``import cortex`` (SPEC 14.3): adding or removing a name is a
deliberate change that must update this list."""

import cortex
from cortex.errors import CortexError, NotFoundError


def test_all_is_pinned_and_sorted():
    assert cortex.__all__ == [
        "Client",
        "CortexException",
        "NotFound",
        "__version__",
        "client",
        "env_delete",
        "env_list",
        "new_client",
    ]
    assert cortex.__all__ == sorted(cortex.__all__)


def test_every_name_exists():
    for name in cortex.__all__:
        assert getattr(cortex, name) is not None, name


def test_exception_hierarchy():
    # every error the client raises is a CortexException; NotFound is a not-found error
    assert cortex.CortexException is CortexError
    assert issubclass(cortex.NotFound, NotFoundError)
    assert issubclass(cortex.NotFound, cortex.CortexException)
    assert callable(cortex.client)
