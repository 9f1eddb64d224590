"""The host's own stalls during a timed phase, and which slow requests they touched.

On a shared virtual machine the whole guest can stop running for milliseconds at a time
(the hypervisor runs something else: steal), and every process waits then, the load
generator as much as the server; a latency percentile counts that wait as the server's.
`StallProbe` starts a separate process that asks for real-time priority (SCHED_FIFO,
else the lowest nice value it may take), sleeps 1 ms again and again, and records each
wake-up that came more than `STALL_MS` late. At real-time priority nothing in the guest
is scheduled before it, so a late wake-up is time the guest as a whole did not run, or
ran the kernel with preemption off; not time the server under test took. Without
SCHED_FIFO a late wake-up may be the benchmark's own CPU contention, so the split of
requests by stall is then not made. The probe sees its own CPU's stalls, not the
other's; steal time (/proc/stat, before and after) counts every CPU.

A guest can also keep running, only slower (the host's other tenants share its caches,
memory bandwidth or cores). So every `WORK_EVERY` wake-ups the probe also times a fixed
piece of work (`WORK_STEPS` steps of a Python loop): at its priority nothing of the
guest's runs before it, so a timing far above the median is the CPU running slow, or
the guest's other CPU, if the two share a core, running the benchmark. Requests whose
span held such a timing are counted apart, as for stalls.

    python bench/stalls.py --probe     # the probe itself: stops at end of its stdin

Times are `time.perf_counter()`, CLOCK_MONOTONIC on Linux: one clock for every process,
so the probe's stalls and the clients' requests can be laid on the same line.
"""

from __future__ import annotations

import bisect
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

STALL_MS = 1.0  # a wake-up later than this is recorded
SLEEP_S = 0.001
MAX_STALLS_KEPT = 100_000
WORK_EVERY = 10  # wake-ups between two timings of the fixed work (about 10 ms)
WORK_STEPS = 2000
SLOW_WORK = 2.0  # a timing over this many times the median counts as slow CPU
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def steal_seconds() -> float:
    """CPU seconds the hypervisor took from this guest since boot (all CPUs)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def _raise_priority() -> str:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "SCHED_FIFO"
    except (AttributeError, OSError):
        pass
    for nice in (-20, -10, -5):
        try:
            os.nice(nice - os.nice(0))
            return f"nice {nice}"
        except OSError:
            continue
    return "normal"


def probe_main() -> int:
    """Sleep `SLEEP_S` until stdin ends; print the late wake-ups as JSON."""
    policy = _raise_priority()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stdin = sys.stdin.fileno()
    threshold = STALL_MS / 1000
    stalls: list[tuple[float, float]] = []
    work: list[tuple[float, float]] = []
    wakeups = 0
    worst = 0.0
    while True:
        due = time.perf_counter() + SLEEP_S
        readable, _, _ = select.select([stdin], [], [], SLEEP_S)
        woke = time.perf_counter()
        if readable and not os.read(stdin, 4096):
            break
        wakeups += 1
        late = woke - due
        worst = max(worst, late)
        if late > threshold and len(stalls) < MAX_STALLS_KEPT:
            stalls.append((due, late))
        if wakeups % WORK_EVERY == 0 and len(work) < MAX_STALLS_KEPT:
            began = time.perf_counter()
            sum(range(WORK_STEPS))
            work.append((began, time.perf_counter() - began))
    json.dump(
        {"policy": policy, "wakeups": wakeups, "max_s": worst, "stalls": stalls, "work": work},
        sys.stdout,
    )
    return 0


@dataclass(slots=True)
class Stalls:
    policy: str = "not run"
    wakeups: int = 0
    max_s: float = 0.0
    steal_s: float = 0.0
    # (monotonic time the probe was due to wake, how late it woke), in time order
    stalls: list[tuple[float, float]] = field(default_factory=list)
    # (monotonic time the fixed work began, its seconds), in time order
    work: list[tuple[float, float]] = field(default_factory=list)

    def work_median(self) -> float:
        times = sorted(took for _, took in self.work)
        return times[len(times) // 2] if times else 0.0

    def slow_work(self) -> list[tuple[float, float]]:
        """The timings over SLOW_WORK times the median, as (start, end) intervals."""
        limit = self.work_median() * SLOW_WORK
        return [(began, began + took) for began, took in self.work if took > limit]

    def figures(self) -> dict[str, float | int | str]:
        lates = [late for _, late in self.stalls]
        median = self.work_median()
        return {
            "probe": self.policy,
            "wakeups": self.wakeups,
            "over_1_ms": sum(1 for late in lates if late > 0.001),
            "over_5_ms": sum(1 for late in lates if late > 0.005),
            "stalled_s": round(sum(lates), 3),
            "max_ms": round(self.max_s * 1000, 2),
            "steal_s": round(self.steal_s, 2),
            "work_timings": len(self.work),
            "work_median_us": round(median * 1e6, 1),
            "work_slow": len(self.slow_work()),
            "work_max_ratio": round(
                max((took for _, took in self.work), default=0.0) / (median or 1), 1
            ),
        }

    def touched(self, spans: Sequence[tuple[float, float]]) -> list[bool]:
        """For each (start, end) span, whether a recorded stall overlapped it. A stall
        lies somewhere from the sleep's start (`due - SLEEP_S`) to the late wake-up."""
        return _overlapped([(due - SLEEP_S, due + late) for due, late in self.stalls], spans)

    def touched_by_slow_work(self, spans: Sequence[tuple[float, float]]) -> list[bool]:
        """For each (start, end) span, whether a slow timing of the work overlapped it."""
        return _overlapped(self.slow_work(), spans)


def _overlapped(
    intervals: Sequence[tuple[float, float]], spans: Sequence[tuple[float, float]]
) -> list[bool]:
    """For each span, whether one of `intervals` (sorted by start) overlapped it."""
    starts = [began for began, _ in intervals]
    # an interval that began before the span reaches into it if it ended after the
    # span's start; looking back by the longest one is enough
    reach = max((end - began for began, end in intervals), default=0.0)
    out = []
    for start, end in spans:
        lo = bisect.bisect_left(starts, start - reach)
        hi = bisect.bisect_right(starts, end)
        out.append(any(stop > start for _, stop in intervals[lo:hi]))
    return out


def stall_figures(
    stalls: Stalls, spans: Sequence[tuple[float, float]], target_ms: float
) -> dict[str, Any]:
    """What the probe saw and, at SCHED_FIFO, how many requests over `target_ms` a stall
    overlapped (from the request's scheduled send to its answer), and the p99 of the
    requests none overlapped, which still counts the queue a stall left behind."""
    from load import percentile  # here: the probe process imports this module too

    figures: dict[str, Any] = stalls.figures()
    if stalls.policy != "SCHED_FIFO":  # its late wake-ups may be our own contention
        return figures
    target_s = target_ms / 1000
    over = over_touched = over_slow_cpu = 0
    clear = []
    clear_of_both = []
    for (start, end), hit, slow_cpu in zip(
        spans, stalls.touched(spans), stalls.touched_by_slow_work(spans), strict=True
    ):
        slow = end - start > target_s
        over += slow
        over_touched += slow and hit
        over_slow_cpu += slow and slow_cpu
        if not hit:
            clear.append(end - start)
            if not slow_cpu:
                clear_of_both.append(end - start)
    clear.sort()
    clear_of_both.sort()
    figures["over_target"] = over
    figures["over_target_touched"] = over_touched
    figures["untouched"] = len(clear)
    figures["untouched_p99_ms"] = round(percentile(clear, 99) * 1000, 2) if clear else None
    figures["over_target_slow_cpu"] = over_slow_cpu
    figures["untouched_by_either"] = len(clear_of_both)
    figures["untouched_by_either_p99_ms"] = (
        round(percentile(clear_of_both, 99) * 1000, 2) if clear_of_both else None
    )
    return figures


def stall_text(figures: dict[str, Any], target_ms: float) -> str:
    if figures["probe"] == "not run":
        return "host stalls: the probe did not run"
    head = (
        f"host stalls (a probe at {figures['probe']} waking every 1 ms): "
        f"{figures['over_1_ms']:,} over 1 ms, {figures['over_5_ms']:,} over 5 ms, "
        f"{figures['stalled_s']:.2f} s in all, longest {figures['max_ms']:.2f} ms; "
        f"steal {figures['steal_s']:.2f} CPU s"
    )
    if "untouched" not in figures:
        return head + " (not SCHED_FIFO: requests not split by stall)"
    p99 = figures["untouched_p99_ms"]
    both = figures["untouched_by_either_p99_ms"]
    return (
        f"{head}. Of {figures['over_target']:,} requests over {target_ms:g} ms, "
        f"{figures['over_target_touched']:,} overlapped a stall; p99 of the "
        f"{figures['untouched']:,} requests no stall overlapped: "
        + (f"{p99:.2f} ms" if p99 is not None else "none")
        + f"\n  CPU speed (a fixed {WORK_STEPS:,}-step loop timed every ~{WORK_EVERY} ms at "
        f"the probe's priority): median {figures['work_median_us']:.1f} us, "
        f"{figures['work_slow']:,} of {figures['work_timings']:,} timings over "
        f"{SLOW_WORK:g}x the median, slowest {figures['work_max_ratio']:.1f}x. Of the "
        f"requests over {target_ms:g} ms, {figures['over_target_slow_cpu']:,} overlapped a "
        f"slow timing; p99 of the {figures['untouched_by_either']:,} requests that "
        "overlapped neither a stall nor a slow timing: "
        + (f"{both:.2f} ms" if both is not None else "none")
    )


class StallProbe:
    """The probe process for the enclosed block; `result` holds what it saw."""

    def __init__(self) -> None:
        self.result = Stalls()
        self._process: subprocess.Popen[bytes] | None = None
        self._steal = 0.0

    def __enter__(self) -> StallProbe:
        self._steal = steal_seconds()
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--probe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self._process.stdout.readline()  # started, at its priority: the phase may begin
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return
        self.result.steal_s = steal_seconds() - self._steal
        if process.returncode == 0 and out:
            data = json.loads(out)
            self.result.policy = data["policy"]
            self.result.wakeups = data["wakeups"]
            self.result.max_s = data["max_s"]
            self.result.stalls = [(due, late) for due, late in data["stalls"]]
            self.result.work = [(began, took) for began, took in data["work"]]


if __name__ == "__main__":
    if sys.argv[1:] != ["--probe"]:
        sys.exit("usage: python bench/stalls.py --probe (started by the benchmarks)")
    sys.exit(probe_main())
