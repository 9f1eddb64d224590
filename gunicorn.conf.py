"""gunicorn's settings for finops, read from the working directory by every `gunicorn`
command started there (the Dockerfile, docker-compose.yml, `make run`, the benchmarks).
Options given on the command line (`--workers`, `--bind`) take precedence."""

import os

# Each worker touches a file between requests for the arbiter's liveness check. On a
# disk-backed temporary directory that update can wait behind the filesystem's journal,
# and the request waits with it; in memory it never does.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn's control socket has one default path per user, so the web and guard pools on
# one host would take each other's; the pools are managed with signals, as ever.
control_socket_disable = True


# Prometheus counters of many worker processes (docs/operations.md, Metrics): a worker
# that exits takes its live gauges with it. The directory is emptied by whatever starts
# the pools (several pools may share it), never here.
def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
