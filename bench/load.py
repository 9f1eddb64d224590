"""The load tools every benchmark drives: Debian's wrk (closed loop, HdrHistogram
percentiles from a Lua report) and hey (paced, every latency from its CSV)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness import BenchError

# Appended to every wrk script: count unexpected statuses per thread, and print the
# summary and HdrHistogram percentiles as one JSON line.
WRK_REPORT = """
local threads = {}
bad = 0
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function response(status, headers, body)
  if status ~= expected then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRK {"requests": %d, "seconds": %.6f, "unexpected": %d, ' ..
    '"socket_errors": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"p999_ms": %.3f, "max_ms": %.3f}\\n', summary.requests, summary.duration / 1e6, b,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
"""


def wrk_bodies_script(bodies: Path, *, path: str, key: str, expected: int, placeholder: str) -> str:
    """A wrk script that POSTs the lines of `bodies` in turn, each with `placeholder`
    replaced by the thread and request number: every request's event ids are new."""
    return f"""
expected = {expected}
local bodies = {{}}
for line in io.lines("{bodies}") do table.insert(bodies, line) end
local n = 0
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}"}}
function request()
  n = n + 1
  local body = bodies[n % #bodies + 1]:gsub("{placeholder}", string.format("%02x%010x", tid, n))
  return wrk.format("POST", "{path}", headers, body)
end
{WRK_REPORT}"""


def wrk(url: str, *, script: str, connections: int, seconds: int, threads: int = 2) -> dict:
    """A closed-loop run of wrk: `connections` kept-alive connections, each sending its
    next request when the answer comes."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    command = [
        *f"wrk -t {threads} -c {connections} -d {seconds}s --latency -s {f.name}".split(),
        url,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    finally:
        os.unlink(f.name)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("WRK ")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"wrk failed: {done.stdout}{done.stderr}")
    result = json.loads(lines[-1][4:])
    result["rate"] = result["requests"] / result["seconds"]
    result["command"] = " ".join(command[:-3] + ["-s", "<script>", url])
    return result


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile."""
    return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]


def hey_paced(
    url: str, *, bodies: Sequence[bytes], key: str, rate: float, clients: int, requests: int
) -> dict:
    """A paced run of hey: `clients` clients, each one hey process of one worker sending
    rate / clients requests a second (hey -q), the bodies dealt round-robin; every
    latency read from hey's CSV for exact percentiles.

    hey's workers of one process tick together, so 16 workers of one process would send
    bursts of 16 at once. Independent callers do not, so each client is its own process,
    started a 1/clients share of the tick after the previous one: the clients' requests
    interleave evenly, as those of 16 independent services would."""
    each = requests // clients
    per_client = rate / clients
    runs = []
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-hey-"))
    try:
        for i, body in enumerate(bodies):
            (tmp / f"{i}.json").write_bytes(body)
        for client in range(clients):
            start_at = started + client / per_client / clients
            time.sleep(max(0.0, start_at - time.perf_counter()))
            paced = f"hey -n {each} -c 1 -q {per_client:.2f} -m POST"
            command = [*paced.split(), "-T", "application/json", "-H",
                       f"Authorization: Bearer {key}", "-D",
                       str(tmp / f"{client % len(bodies)}.json"), "-o", "csv",
                       url]  # fmt: skip
            runs.append((command, subprocess.Popen(command, stdout=subprocess.PIPE, text=True)))
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        for _, process in runs:
            out, _ = process.communicate(timeout=600)
            for line in out.splitlines()[1:]:
                fields = line.split(",")
                latencies.append(float(fields[0]) * 1000)
                statuses[fields[6]] = statuses.get(fields[6], 0) + 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    latencies.sort()
    shown = [f"Authorization: Bearer {key[:15]}..." if "Bearer" in c else c for c in runs[0][0]]
    return {
        "requests": len(latencies),
        "expected": each * clients,
        "statuses": statuses,
        "offered_rate": rate,
        "rate": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "p999_ms": percentile(latencies, 99.9),
        "max_ms": latencies[-1],
        "command": f"{clients} x (staggered) "
        + " ".join(shown[:-4] + ["<body>", "-o", "csv", url]),
    }
