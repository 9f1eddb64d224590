"""CPU accounting for the benchmarks (Linux /proc): who used the CPUs during a phase."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

OTHER_CPU_WARNING = 0.05
CPU_SAMPLE_INTERVAL_S = 0.5


# --- CPU accounting (Linux /proc) -----------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")
KTHREADD = 2  # the parent of every kernel thread


def _stat(pid: str) -> tuple[int, str, float] | None:
    """(ppid, command, CPU seconds) of a process, None when it is gone."""
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    close = stat.rfind(")")
    fields = stat[close + 2 :].split()
    return (
        int(fields[1]),
        stat[stat.find("(") + 1 : close],
        (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
    )


def _is_our_postgres(pid: int, database: str) -> bool:
    """A backend of the bench database, or a shared background process (checkpointer,
    WAL writer...): not the client backends of other databases."""
    try:
        title = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    if f" {database} " in title:
        return True
    return title.startswith("postgres: ") and "(" not in title and "[local]" not in title


def _system_busy() -> tuple[float, float]:
    """CPU seconds all processors spent busy since boot, and of those in interrupts."""
    try:
        fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    # user nice system idle iowait irq softirq steal
    ticks = [int(v) for v in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / CLOCK_TICKS, (ticks[5] + ticks[6]) / CLOCK_TICKS


@dataclass(slots=True)
class CpuSample:
    wall: float
    system: float
    interrupts: float
    client: float
    gunicorn: dict[int, float] = field(default_factory=dict)
    postgres: dict[int, float] = field(default_factory=dict)
    kernel: dict[int, float] = field(default_factory=dict)
    redis: dict[int, float] = field(default_factory=dict)


class CpuMeter:
    """CPU seconds used by gunicorn (master and workers), PostgreSQL (the bench database's
    backends and the shared background processes), this client, the kernel (its threads,
    such as I/O writeback, and interrupts) and every other process. With `redis_pid` set,
    the Redis server is counted apart (all of it: other databases' clients too)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.gunicorn_pid: int | None = None
        self.redis_pid: int | None = None
        self._postgres_pids: dict[int, bool] = {}

    def sample(self) -> CpuSample:
        times = os.times()
        sample = CpuSample(time.perf_counter(), *_system_busy(), times.user + times.system)
        if not PROC.is_dir():
            return sample
        table = {}
        for entry in os.scandir(PROC):
            if entry.name.isdigit() and (stat := _stat(entry.name)) is not None:
                table[int(entry.name)] = stat
        ours = {self.gunicorn_pid} if self.gunicorn_pid in table else set()
        grew = bool(ours)
        while grew:
            children = {pid for pid, (ppid, _, _) in table.items() if ppid in ours} - ours
            ours |= children
            grew = bool(children)
        sample.gunicorn = {pid: table[pid][2] for pid in ours}
        if self.redis_pid in table:
            sample.redis = {self.redis_pid: table[self.redis_pid][2]}
        for pid, (ppid, command, cpu) in table.items():
            if pid == KTHREADD or ppid == KTHREADD:
                sample.kernel[pid] = cpu
            if command != "postgres":
                continue
            if pid not in self._postgres_pids:
                self._postgres_pids[pid] = _is_our_postgres(pid, self.database)
            if self._postgres_pids[pid]:
                sample.postgres[pid] = cpu
        return sample

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """CPU use of the enclosed block, in the dict yielded (filled on exit).

        A thread samples every `CPU_SAMPLE_INTERVAL_S`: a process that ends meanwhile (a
        database connection closed after `CONN_MAX_AGE`) keeps what it used until its
        last sample."""
        used: dict[str, float] = {}
        start = self.sample()
        seen_gunicorn: dict[int, float] = {}
        seen_postgres: dict[int, float] = {}
        stop = threading.Event()

        def track() -> None:
            while not stop.wait(CPU_SAMPLE_INTERVAL_S):
                sample = self.sample()
                seen_gunicorn.update(sample.gunicorn)
                seen_postgres.update(sample.postgres)

        tracker = threading.Thread(target=track, daemon=True)
        tracker.start()
        try:
            yield used
        finally:
            stop.set()
            tracker.join()
            end = self.sample()
            end.gunicorn = {**seen_gunicorn, **end.gunicorn}
            end.postgres = {**seen_postgres, **end.postgres}
            used.update(self.used(start, end))

    @staticmethod
    def used(start: CpuSample, end: CpuSample) -> dict[str, float]:
        """CPU seconds between two samples."""

        def delta(a: dict[int, float], b: dict[int, float]) -> float:
            return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())

        wall = end.wall - start.wall
        used = {
            "wall_s": wall,
            "gunicorn_s": delta(start.gunicorn, end.gunicorn),
            "postgres_s": delta(start.postgres, end.postgres),
            "client_s": end.client - start.client,
            "kernel_s": delta(start.kernel, end.kernel) + end.interrupts - start.interrupts,
        }
        if end.redis:
            used["redis_s"] = delta(start.redis, end.redis)
        system = end.system - start.system
        used["other_s"] = max(0.0, system - sum(v for k, v in used.items() if k != "wall_s"))
        used["busy_share"] = system / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        return {k: round(v, 3) for k, v in used.items()}


def cpu_disturbed(cpu: dict[str, float]) -> bool:
    capacity = cpu["wall_s"] * (os.cpu_count() or 1)
    return capacity > 0 and cpu["other_s"] / capacity > OTHER_CPU_WARNING


def cpu_text(cpu: dict[str, float]) -> str:
    cores = os.cpu_count() or 1
    text = (
        f"CPU s: gunicorn {cpu['gunicorn_s']:.1f}, postgres {cpu['postgres_s']:.1f}, "
        f"client {cpu['client_s']:.1f}, "
        + (f"redis {cpu['redis_s']:.1f}, " if "redis_s" in cpu else "")
        + f"kernel {cpu['kernel_s']:.1f}, "
        f"other processes {cpu['other_s']:.1f} "
        f"({cpu['busy_share']:.0%} of {cores} CPUs busy)"
    )
    if cpu_disturbed(cpu):
        text += "; WARNING: other processes used the CPUs, figures are disturbed"
    return text
