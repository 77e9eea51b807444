"""BatchAPI and TaskAPI routes: forwarded to the operator's ``/batch/<api>`` or ``/tasks/<api>``.

The query string is kept, the answer streams back like a replica's (no limiter: the operator is
not a replica). Without an operator configured the answer is 503 JSON ``api.unavailable``.
"""

from __future__ import annotations

from cortex.dataplane.answers import JSON, error_body
from cortex.dataplane.connection import Request
from cortex.dataplane.forward import ForwardingConnection, build_upstream_request
from cortex.dataplane.table import JobRoute

_JOB_PATHS = {"BatchAPI": b"/batch/", "TaskAPI": b"/tasks/"}


def forward_job(conn: ForwardingConnection, req: Request, route: JobRoute, sub: bytes) -> None:
    """Forward ``req`` for ``route``; ``sub`` is ``/`` plus the query string, if any."""
    conn.api = route.api_name
    pool = conn.ctx.operator_pool
    prefix = _JOB_PATHS.get(route.kind)
    if pool is None or prefix is None:
        msg = f"api {route.api_name} cannot take jobs: no operator is configured"
        conn.reply(503, JSON, error_body("api.unavailable", msg))
        return
    path = prefix + route.api_name.encode() + sub[1:]
    data, _ = build_upstream_request(req, path, conn.client_ip, pool.host_header)
    conn.forward_to(pool, data)
