"""The quickstart (`make demo`): start the local cluster, deploy examples/realtime, ask it for a
prediction, print the answer and what to try next. Safe to run again: an API that is up to date
is left alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

import cortex

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("cortex"))
READY_TIMEOUT_S = 180.0


def run(*args: str) -> None:
    print(f"$ cortex {' '.join(args)}", flush=True)
    subprocess.run([CLI, *args], check=True)


def wait_until_live(client: cortex.Client, name: str) -> dict[str, object]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        api = client.get_api(name)
        status = api.get("status") or {}
        if status.get("ready", 0) >= 1 and status.get("ready") == status.get("up_to_date"):
            return api
        time.sleep(0.5)
    raise SystemExit(f"{name} did not become ready within {READY_TIMEOUT_S:.0f}s; see `cortex logs {name}`")


def main() -> None:
    run("cluster", "up", "-y")
    run("deploy", str(HERE / "realtime" / "cortex.yaml"), "-y")
    api = wait_until_live(cortex.client("local"), "iris")
    endpoint = str(api["endpoint"])
    sample = json.loads((HERE / "realtime" / "sample.json").read_text())
    print(f"$ curl -X POST {endpoint} -H 'Content-Type: application/json' -d '{json.dumps(sample)}'")
    answer = httpx.post(endpoint, json=sample, timeout=30).json()
    print(json.dumps(answer, indent=2))
    print(
        "\nThe iris API is live. Next:\n"
        "  cortex get iris          # status, replicas, endpoint, history\n"
        "  cortex describe iris     # replica states\n"
        "  cortex logs iris -f      # follow its logs\n"
        "  cortex delete iris       # remove it\n"
        "  cortex cluster down      # stop the local cluster"
    )


if __name__ == "__main__":
    main()
