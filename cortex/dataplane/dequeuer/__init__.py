"""The dequeuer sidecar (SPEC 5): takes AsyncAPI requests and BatchAPI batches off a queue and
POSTs them to the user's server in the same replica.

* :mod:`.settings`: :class:`DequeuerSettings` (``to_env`` / ``from_env``);
* :mod:`.sidecar`: :func:`dequeuer_container`, the container the operator adds to a replica;
* :mod:`.worker`: the receive loop (leases, renewal, concurrency, drain on SIGTERM);
* :mod:`.async_handler` and :mod:`.batch_handler`: what one message does;
* :mod:`.probes`: waiting for the user container's readiness; :mod:`.metrics`;
* :mod:`.runner`: one process wired together; ``python -m cortex.dataplane.dequeuer`` runs it.
"""

from __future__ import annotations

from cortex.dataplane.dequeuer.settings import DequeuerMode, DequeuerSettings
from cortex.dataplane.dequeuer.sidecar import dequeuer_container

__all__ = ["DequeuerMode", "DequeuerSettings", "dequeuer_container"]
