"""The activator's hold path: a request for an API with no Ready replica waits for one.

Used for an API scaled to zero or waking from zero (:meth:`Activator.should_hold`): the request
enters the activator's count (503 text ``pending request queue full`` when its queue is full),
then waits until the router has a Ready replica for the API and is routed as usual. Waiting
longer than the activator's timeout answers 503 JSON ``api.unavailable`` with
``Retry-After: 5``; an API removed meanwhile answers 503 ``api.unavailable`` at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cortex.dataplane.answers import JSON, QUEUE_FULL_BODY, RETRY_AFTER, TEXT, error_body
from cortex.dataplane.connection import Request
from cortex.dataplane.limiter import QueueFullError
from cortex.dataplane.router import RealtimeTarget

if TYPE_CHECKING:
    from cortex.dataplane.forward import ForwardingConnection


def hold(
    conn: ForwardingConnection,
    req: Request,
    target: RealtimeTarget,
    path: bytes,
    shadow: RealtimeTarget | None,
) -> None:
    """Hold ``req`` for ``target`` (see the module docstring); the answer goes to ``conn``."""
    try:
        conn.ctx.activator.enter(target.route)
    except QueueFullError:
        conn.reply(503, TEXT, QUEUE_FULL_BODY)
        return
    conn.spawn(_held_then_route(conn, req, target.api_name, path, shadow))


async def _held_then_route(
    conn: ForwardingConnection,
    req: Request,
    api_name: str,
    path: bytes,
    shadow: RealtimeTarget | None,
) -> None:
    """Wait (held) until the API has a Ready replica, then route as usual."""
    activator = conn.ctx.activator
    target: RealtimeTarget | None = None
    try:
        deadline = activator.deadline()
        while target is None or not target.replicas:
            await activator.wait(api_name, deadline)
            target = conn.ctx.router.target_by_name(api_name)
            if target is None:
                break
    except TimeoutError:
        conn.detach_task()
        msg = f"api {api_name} has no ready replica after {activator.timeout_s:g}s"
        conn.reply(503, JSON, error_body("api.unavailable", msg), extra=RETRY_AFTER)
        return
    finally:
        activator.leave(api_name)
    conn.detach_task()
    if target is None:
        conn.unavailable(api_name)
    else:
        conn.route(req, target, path, shadow)
