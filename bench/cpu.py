"""CPU time of processes from /proc (Linux only, no psutil): for the benchmarks' per-item figures.

All figures are utime + stime in seconds. A process's exited, waited-for children are in its
cutime + cstime: PostgreSQL's postmaster reaps every backend, so summing the live postgres
processes plus the postmaster's children fields counts backends that came and went.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone
        return None
    # comm is in parentheses and may hold spaces: split after the last ')'.
    head, _, tail = raw.rpartition(")")
    return [head.split(" (", 1)[1], *tail.split()]  # [comm, state, ppid, pgrp, ...]


def _fields(pid: int) -> tuple[str, int, float, float] | None:
    """(comm, pgrp, own cpu s, reaped children's cpu s) or None if the process is gone."""
    s = _stat(pid)
    if s is None:
        return None
    # /proc/pid/stat fields 14-17 (1-based) are utime, stime, cutime, cstime; s[0] is field 2.
    utime, stime, cutime, cstime = (int(x) for x in s[12:16])
    return s[0], int(s[3]), (utime + stime) / TICK, (cutime + cstime) / TICK


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def process_cpu(pid: int, *, children: bool = True) -> float:
    f = _fields(pid)
    if f is None:
        return 0.0
    return f[2] + (f[3] if children else 0.0)


def group_cpu(pgrp: int) -> dict[int, float]:
    """Own CPU of every live process of a process group (a worker and its beat child)."""
    out = {}
    for pid in _pids():
        f = _fields(pid)
        if f is not None and f[1] == pgrp:
            out[pid] = f[2] + f[3]
    return out


def postgres_all_cpu() -> float:
    """The whole PostgreSQL server, every database and client (shared: others' too)."""
    procs = {}
    for pid in _pids():
        s = _stat(pid)
        f = _fields(pid)
        if s is not None and f is not None:
            procs[pid] = (s[0], int(s[2]), f[2], f[3])
    total = 0.0
    for comm, ppid, own, reaped in procs.values():
        if comm != "postgres":
            continue
        total += own
        if procs.get(ppid, ("",))[0] != "postgres":  # the postmaster: it reaps the backends
            total += reaped
    return total


def redis_pid() -> int | None:
    out = subprocess.run(
        ["redis-cli", "info", "server"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores, everyone), from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


class BackendTracker:
    """CPU of the PostgreSQL backends serving one database, sampled while a window runs.

    Backends are listed from pg_stat_activity; each one's CPU is read at its first and last
    sighting (a backend first seen mid-window started in it and counts from zero). A backend
    that exits between two samples loses its CPU since the last sample: call sample() often.
    """

    def __init__(self, cursor_factory, database: str, exclude_pid: int | None = None):
        self._cursor = cursor_factory
        self.database, self.exclude = database, exclude_pid
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.started = False

    def _backend_pids(self) -> list[int]:
        with self._cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.database])
            return [row[0] for row in cur.fetchall() if row[0] != self.exclude]

    def sample(self) -> None:
        for pid in self._backend_pids():
            cpu = process_cpu(pid, children=False)
            if pid not in self.first:
                self.first[pid] = cpu if not self.started else 0.0
            if cpu:
                self.last[pid] = cpu
        self.started = True

    def total(self) -> float:
        return sum(max(0.0, self.last.get(pid, start) - start) for pid, start in self.first.items())
