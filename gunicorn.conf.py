"""gunicorn's settings for finops, read from the working directory by every `gunicorn`
command started there (the Dockerfile, docker-compose.yml, `make run`, the benchmarks).
Options given on the command line (`--workers`, `--bind`) take precedence."""

import os

# Each worker touches a file between requests for the arbiter's liveness check. On a
# disk-backed temporary directory that update can wait behind the filesystem's journal,
# and the request waits with it; in memory it never does.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn's sync worker, but each new connection wakes one idle worker, not all of them
# (finops/gunicorn_worker.py). `--threads` above 1 still selects gthread.
worker_class = "finops.gunicorn_worker.SyncWorker"
