"""The five workload kinds (SPEC 0.1); the enum values are the exact strings users write."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    REALTIME_API = "RealtimeAPI"
    BATCH_API = "BatchAPI"
    TRAFFIC_SPLITTER = "TrafficSplitter"
    TASK_API = "TaskAPI"
    ASYNC_API = "AsyncAPI"


# Kinds that run a pod (everything but the router).
POD_KINDS = frozenset({Kind.REALTIME_API, Kind.ASYNC_API, Kind.BATCH_API, Kind.TASK_API})
# Kinds with replicas that the autoscaler drives and rolling updates replace.
SCALED_KINDS = frozenset({Kind.REALTIME_API, Kind.ASYNC_API})
