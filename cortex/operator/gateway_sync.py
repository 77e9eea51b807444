"""The operator's side of ``POST /internal/gateway/sync``: the published route table, the long
poll, and what the gateway last told us (its table version and its in-flight counts).

Each sync request both *acks* a table version (the one the gateway now serves from) and
reports, per replica, its queued + running requests. The reconciler reads both to drain a
replica before deleting it: the replica must be absent from a table version the gateway has
acked, with nothing in flight. A gateway that has not been heard from for
:data:`GATEWAY_STALE_S` counts as absent (there is nothing to drain from); a request that is
being long-polled right now counts as heard from.

The long poll: if the published version differs from the gateway's, answer at once; otherwise
wait up to ``min(wait_s, MAX_WAIT_S)`` for :meth:`GatewaySync.publish` to change it. Waiters
wait on the :class:`asyncio.Event` current when they arrived; publishing sets it and installs a
fresh one, so no change between a read and a wait is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import replace

from cortex.dataplane.table import RouteTable, SyncRequest

GATEWAY_STALE_S = 5.0
MAX_WAIT_S = 5.0


def same_routes(a: RouteTable, b: RouteTable) -> bool:
    """Equal content, whatever the versions."""
    return replace(a, version=0) == replace(b, version=0)


class GatewaySync:
    def __init__(self, *, clock: Callable[[], float], initial_version: int) -> None:
        self._clock = clock
        self._table = RouteTable(version=initial_version)
        self._changed = asyncio.Event()
        self._acked: int | None = None
        self._in_flight: dict[str, int] = {}
        self._last_seen: float | None = None
        self._polling = 0

    @property
    def table(self) -> RouteTable:
        return self._table

    @property
    def acked_version(self) -> int | None:
        """The table version of the latest sync request (None before the first one)."""
        return self._acked

    def publish(self, table: RouteTable) -> RouteTable:
        """Adopt ``table``'s routes; the version goes up by one only when they changed.
        Returns the published table."""
        if same_routes(table, self._table):
            return self._table
        self._table = replace(table, version=self._table.version + 1)
        self._changed.set()
        self._changed = asyncio.Event()
        return self._table

    async def sync(self, req: SyncRequest) -> RouteTable:
        """Record the gateway's report, then answer (at once, or after a change or the wait)."""
        self._record(req)
        self._polling += 1
        try:
            if self._table.version == req.version:
                changed = self._changed
                wait_s = max(min(req.wait_s, MAX_WAIT_S), 0.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=wait_s)
            return self._table
        finally:
            self._polling -= 1
            self._last_seen = self._clock()

    def _record(self, req: SyncRequest) -> None:
        self._acked = req.version
        self._in_flight = dict(req.in_flight)
        self._last_seen = self._clock()

    def gateway_present(self) -> bool:
        """A sync is in progress, or one ended less than GATEWAY_STALE_S ago."""
        if self._polling > 0:
            return True
        return self._last_seen is not None and self._clock() - self._last_seen < GATEWAY_STALE_S

    def released(self, replica_id: str, removed_in_version: int) -> bool:
        """The gateway acked a table without the replica and reports nothing in flight on it."""
        if self._acked is None or self._acked < removed_in_version:
            return False
        return self._in_flight.get(replica_id, 0) == 0

    def in_flight(self, replica_ids: Iterable[str]) -> float:
        """Sum of the latest reported in-flight counts of these replicas."""
        return float(sum(self._in_flight.get(r, 0) for r in replica_ids))
