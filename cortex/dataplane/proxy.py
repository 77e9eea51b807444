"""The gateway's protocol: what each request is routed to.

:class:`ProxyProtocol` is a :class:`~cortex.dataplane.forward.ForwardingConnection` (itself a
:class:`~cortex.dataplane.connection.ClientConnection`: parsing, order, local answers) whose
dispatch is:

1. The router finds the API by endpoint (404 JSON ``api.not_found`` if none).
2. A RealtimeAPI is forwarded to a replica (:mod:`.forward`); a TrafficSplitter first picks a
   target and maybe a shadow. With no Ready replica, an API scaled to zero (or waking from
   zero) is held by the activator (:mod:`.hold`) until one appears; otherwise the answer is
   503 JSON ``api.unavailable``.
3. An AsyncAPI is answered by the async gateway (:mod:`.async_routes`).
4. A BatchAPI or TaskAPI is forwarded to the operator (:mod:`.job_routes`).

The modules split the concepts; the class keeps one flat method table, so the hot path (a
realtime request) costs what a single class would.
"""

from __future__ import annotations

from cortex.dataplane.async_routes import answer_async
from cortex.dataplane.connection import ProxyContext, Request
from cortex.dataplane.forward import ForwardingConnection
from cortex.dataplane.hold import hold
from cortex.dataplane.job_routes import forward_job
from cortex.dataplane.router import RealtimeTarget, SplitterTarget
from cortex.dataplane.table import AsyncRoute, JobRoute

__all__ = ["ProxyContext", "ProxyProtocol"]


class ProxyProtocol(ForwardingConnection):
    """One client connection of the gateway (see the module docstring)."""

    def _dispatch(self, req: Request) -> None:
        m = self.ctx.router.match(req.url)
        if m is None:
            super()._dispatch(req)
            return
        target = m.target
        if type(target) is RealtimeTarget:
            self.route(req, target, m.upstream_path, None)
        elif isinstance(target, SplitterTarget):
            chosen, shadow = self.ctx.router.pick_split(target)
            if chosen is None:
                self.api = target.api_name
                self.unavailable(target.api_name)
                return
            self.route(req, chosen, m.upstream_path, shadow)
        elif isinstance(target, AsyncRoute):
            answer_async(self, req, target, m.upstream_path)
        elif isinstance(target, JobRoute):
            forward_job(self, req, target, m.upstream_path)

    def _no_replica(
        self, req: Request, target: RealtimeTarget, path: bytes, shadow: RealtimeTarget | None
    ) -> None:
        if self.ctx.activator.should_hold(target.route):
            hold(self, req, target, path, shadow)
        else:
            self.unavailable(target.api_name)
