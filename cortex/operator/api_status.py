"""The one-word status of a RealtimeAPI / AsyncAPI that ``cortex get`` shows (SPEC preface:
"live / updating / error / scaled to zero ..."), from its replica counts: a pure function.
"""

from __future__ import annotations

from enum import StrEnum

from cortex.operator.replica_counts import ReplicaCounts

__all__ = ["ApiStatus", "api_status"]


class ApiStatus(StrEnum):
    LIVE = "live"
    UPDATING = "updating"
    SCALED_TO_ZERO = "scaled to zero"
    DEGRADED = "degraded"
    ERROR = "error"


def api_status(counts: ReplicaCounts) -> ApiStatus:
    """Classify an API by its :class:`ReplicaCounts` (``requested`` = the desired replicas),
    first match wins:

    1. ``scaled to zero``: 0 requested and no replica Ready or on its way up (Terminating ones
       may still be draining);
    2. ``error``: replicas that failed (ErrImagePull, Failed, Killed, KilledOOM, Unknown) or are
       Stalled (no room on the node), and not one Ready replica of any version: nothing serves;
    3. ``degraded``: failed or Stalled replicas, but some Ready replica serves;
    4. ``live``: as many latest-version Ready replicas as requested (at least one), no
       out-of-date Ready replica and none still starting: the steady state;
    5. ``updating``: anything else: a rolling update, replicas starting (after a deploy, a
       scale-up or a wake from zero), or a scale-down in progress.
    """
    troubled = counts.total_failed + counts.stalled
    if counts.requested == 0 and counts.all_ready == 0 and counts.up_to_date == 0:
        return ApiStatus.SCALED_TO_ZERO
    if troubled > 0:
        return ApiStatus.ERROR if counts.all_ready == 0 else ApiStatus.DEGRADED
    steady = counts.ready == counts.up_to_date == counts.requested
    if counts.requested >= 1 and steady and counts.ready_out_of_date == 0:
        return ApiStatus.LIVE
    return ApiStatus.UPDATING
