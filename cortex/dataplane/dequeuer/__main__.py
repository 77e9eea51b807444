"""``python -m cortex.dataplane.dequeuer``: the sidecar process.

Settings come from ``CORTEX_DEQUEUER_*`` and ``CORTEX_PORT`` (:class:`DequeuerSettings`). Logs
are JSON lines on stdout (the backend labels and stores them). SIGTERM/SIGINT start a graceful
drain (see :mod:`cortex.dataplane.dequeuer.worker`); a second signal exits at once, leaving
unfinished messages to their leases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time

from cortex.dataplane.dequeuer.runner import run_dequeuer
from cortex.dataplane.dequeuer.settings import DequeuerSettings, DequeuerSettingsError

FORCED_EXIT_CODE = 130


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (unix s), level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


async def _serve(settings: DequeuerSettings) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stopping.is_set():
            logging.getLogger("cortex.dequeuer").warning("second signal: exiting now")
            os._exit(FORCED_EXIT_CODE)
        logging.getLogger("cortex.dequeuer").info("signal received: draining")
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return await run_dequeuer(settings, stopping=stopping)


def main() -> int:
    try:
        settings = DequeuerSettings.from_env()
    except DequeuerSettingsError as exc:
        print(json.dumps({"time": time.time(), "level": "ERROR", "message": str(exc)}), flush=True)
        return 1
    configure_logging(settings.log_level)
    return asyncio.run(_serve(settings))


if __name__ == "__main__":
    sys.exit(main())
