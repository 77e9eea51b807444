"""BatchAPI / TaskAPI endpoints forwarded by the gateway to a (fake) operator."""

from __future__ import annotations

import httpx
import pytest

from cortex.dataplane.table import JobRoute, RouteTable
from tests.integration.test_gateway_support import FakeOperator, run_gateway, run_upstream, wait_for

pytestmark = pytest.mark.integration

TABLE = RouteTable(1, jobs=(JobRoute("b", "/b", "BatchAPI"), JobRoute("t", "/team/t", "TaskAPI")))


async def test_job_routes_forward_to_the_operator_with_query_and_body() -> None:
    op = FakeOperator(TABLE)
    async with run_upstream(op) as op_port:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{op_port}"
        async with run_gateway(RouteTable(), operator_url=url, token="tok") as gw:
            await wait_for(lambda: gw.router.table.version == 1)
            base = f"http://127.0.0.1:{gw.port}"
            async with httpx.AsyncClient() as c:
                r = await c.post(f"{base}/b?dryRun=true", content=b'{"workers": 1}')
                assert r.status_code == 200
                got = r.json()
                assert (got["method"], got["path"]) == ("POST", "/batch/b")
                assert (got["query"], got["body"]) == ("dryRun=true", '{"workers": 1}')
                assert "authorization" not in got["headers"]
                r = await c.delete(f"{base}/team/t?jobID=abc")
                assert (r.json()["method"], r.json()["path"]) == ("DELETE", "/tasks/t")
                assert r.json()["query"] == "jobID=abc"
                op.job_status = 404
                r = await c.get(f"{base}/b")
                assert r.status_code == 404 and r.json()["query"] == ""
                # exact path only
                assert (await c.get(f"{base}/b/sub")).status_code == 404


async def test_job_route_without_operator_answers_503() -> None:
    async with run_gateway(TABLE) as gw, httpx.AsyncClient() as c:
        r = await c.post(f"http://127.0.0.1:{gw.port}/b", content=b"{}")
    assert r.status_code == 503 and r.json()["error"]["code"] == "api.unavailable"


async def test_operator_down_answers_502() -> None:
    op = FakeOperator(TABLE)
    async with run_upstream(op) as op_port:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{op_port}"
        async with run_gateway(RouteTable(), operator_url=url) as gw:
            await wait_for(lambda: gw.router.table.version == 1)
    # the operator is gone now; serve the table it gave and report the failure
    async with run_gateway(TABLE, operator_url=url) as gw2, httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{gw2.port}/b")
    assert r.status_code == 502 and r.json()["error"]["code"] == "api.upstream_error"
