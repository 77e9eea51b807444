"""Replica processes left behind by a backend that died without stopping them.

Every container runs in its own process group (its leader's pid is the group id). Each replica
records, in ``<state_dir>/replicas/<replica_id>/pids.json``, the pid and create time of every
container process it started. At start-up, for every recorded group, the processes still alive
in it are killed (SIGKILL) when they are provably ours: the leader with its recorded create
time, or members of that group created no earlier than the leader (Linux never hands out a pid
that is still some process group's id, so those members are the leader's descendants). Then
the replica folders are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterable
from pathlib import Path

import psutil

PIDS_FILE = "pids.json"
_TOLERANCE_S = 0.05


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def record_pids(replica_dir: Path, processes: Iterable[tuple[int, float]]) -> None:
    """Atomically (re)write the replica's ``pids.json`` with (pid, create_time) pairs."""
    replica_dir.mkdir(parents=True, exist_ok=True)
    body = [{"pid": pid, "create_time": ct} for pid, ct in processes]
    tmp = replica_dir / (PIDS_FILE + ".tmp")
    tmp.write_text(json.dumps({"processes": body}))
    tmp.replace(replica_dir / PIDS_FILE)


def _recorded(replica_dir: Path) -> list[tuple[int, float]]:
    try:
        data = json.loads((replica_dir / PIDS_FILE).read_text())
        return [(int(p["pid"]), float(p["create_time"])) for p in data["processes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _groups() -> dict[int, list[tuple[int, float]]]:
    """Every live process by process group: pgid -> [(pid, create_time)]."""
    out: dict[int, list[tuple[int, float]]] = {}
    for proc in psutil.process_iter():
        try:
            pgid = os.getpgid(proc.pid)
            out.setdefault(pgid, []).append((proc.pid, proc.create_time()))
        except (OSError, psutil.Error):
            continue
    return out


def _ours(members: list[tuple[int, float]], leader: int, leader_ct: float) -> list[int]:
    return [pid for pid, ct in members if ct >= leader_ct - _TOLERANCE_S or pid == leader]


def kill_orphans(replicas_root: Path) -> list[int]:
    """Kill what earlier runs left (blocking; run it in a thread); the pids killed."""
    if not replicas_root.is_dir():
        return []
    groups = _groups()
    killed: list[int] = []
    for replica_dir in sorted(p for p in replicas_root.iterdir() if p.is_dir()):
        for leader, leader_ct in _recorded(replica_dir):
            members = groups.get(leader, [])
            alive_ct = dict(members).get(leader)
            if alive_ct is not None and abs(alive_ct - leader_ct) > _TOLERANCE_S:
                continue  # the pid now belongs to an unrelated process
            for pid in _ours(members, leader, leader_ct):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        shutil.rmtree(replica_dir, ignore_errors=True)
    return killed
