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


def predict(endpoint: str, sample: object) -> object:
    """POST the sample; a 503 right after start-up (the gateway picking up the new replicas)
    is retried for a few seconds."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.post(endpoint, json=sample, timeout=30)
        if response.status_code != 503 or time.monotonic() > deadline:
            response.raise_for_status()
            return response.json()
        time.sleep(0.2)


def main() -> None:
    run("cluster", "up", "-y")
    run("deploy", str(HERE / "realtime" / "cortex.yaml"), "-y")
    api = cortex.client("local").wait_until_ready("iris", timeout_s=READY_TIMEOUT_S)
    endpoint = str(api["endpoint"])
    sample = json.loads((HERE / "realtime" / "sample.json").read_text())
    print(
        f"$ curl -X POST {endpoint} -H 'Content-Type: application/json' -d '{json.dumps(sample)}'"
    )
    answer = predict(endpoint, sample)
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
