"""Start a throwaway ``redis-server`` for tests and benchmarks (no pytest, no conftest).

``find_redis_server()`` asks ``scripts/ensure-redis`` for a binary (None when it cannot give
one); ``running_redis_server(binary, tmp_dir)`` runs it on a free loopback port with no
persistence (no RDB snapshots, no AOF) in ``tmp_dir``, yields its ``redis://`` URL once it
answers PING, and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENSURE_REDIS = REPO_ROOT / "scripts" / "ensure-redis"


def find_redis_server() -> str | None:
    """The path ``scripts/ensure-redis`` prints, or None when it provides no binary.

    ``CORTEX_TEST_REDIS_SERVER=<path>`` picks a binary instead (e.g. to run the suite against
    another Redis version).
    """
    chosen = os.environ.get("CORTEX_TEST_REDIS_SERVER")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    try:
        done = subprocess.run(
            ["bash", str(ENSURE_REDIS)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    return path[0] if path and Path(path[0]).is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis_server(
    binary: str, tmp_dir: Path, *, start_timeout_s: float = 10.0
) -> Iterator[str]:
    """Run ``binary`` on 127.0.0.1:<free port>; yields ``redis://127.0.0.1:<port>/0``."""
    port = _free_port()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(tmp_dir), "--daemonize", "no"]
    with (tmp_dir / "redis.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_dir)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _answers_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (tmp_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start on port {port}:\n{log_text}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
