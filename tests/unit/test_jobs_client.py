"""The Python client's job calls against a mocked operator."""

from __future__ import annotations

import json

import httpx

from cortex.client.python_client import Client


def operator(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/get/train":
            return httpx.Response(200, json=[{"metadata": {"name": "train", "kind": "TaskAPI"}}])
        if request.method == "POST":
            return httpx.Response(200, json={"job_id": "69a", **json.loads(request.content)})
        if request.method == "DELETE":
            return httpx.Response(200, json={"message": "stopped job 69a"})
        return httpx.Response(200, json={"job_status": {"status": "running"}})

    return httpx.MockTransport(handle)


def test_submit_get_stop() -> None:
    seen: list[httpx.Request] = []
    cx = Client({"name": "e", "operator_endpoint": "http://op"}, transport=operator(seen))
    assert cx.submit_job("train", {"config": {"a": 1}}) == {"job_id": "69a", "config": {"a": 1}}
    assert seen[-1].url.path == "/tasks/train"
    assert seen[-1].headers["content-type"] == "application/json"
    assert cx.get_job("train", "69a") == {"job_status": {"status": "running"}}
    assert seen[-1].url.params["jobID"] == "69a"
    assert cx.stop_job("train", "69a") == {"message": "stopped job 69a"}
    assert seen[-1].method == "DELETE" and seen[-1].url.path == "/tasks/train"
