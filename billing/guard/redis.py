"""The guard's Redis: its client, its scripts, the check's own connection, and whether
Redis is up."""

from __future__ import annotations

import os
import threading
import time
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from . import lua

DOWN_PAUSE_SECONDS = 5.0
_down_until = 0.0


def enabled() -> bool:
    """Hot state needs Redis and PostgreSQL's transaction ids; without them the guard
    reads the ledger (exact, without reservations)."""
    return bool(settings.FINOPS_GUARD_REDIS_URL) and connection.vendor == "postgresql"


def available() -> bool:
    """False for a few seconds after Redis failed in this process, so that an outage
    costs one timeout, not one per request."""
    return enabled() and time.monotonic() >= _down_until


def mark_down() -> None:
    global _down_until
    _down_until = time.monotonic() + DOWN_PAUSE_SECONDS


def mark_up() -> None:
    """Forget a failure (tests start from Redis up)."""
    global _down_until
    _down_until = 0.0


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=settings.FINOPS_GUARD_REDIS_TIMEOUT, socket_connect_timeout=1
    )


def client() -> redis.Redis:
    return _client(settings.FINOPS_GUARD_REDIS_URL)


class Scripts:
    def __init__(self, redis_client: redis.Redis) -> None:
        self.apply = redis_client.register_script(lua.APPLY)
        self.seed_begin = redis_client.register_script(lua.SEED_BEGIN)
        self.seed_install = redis_client.register_script(lua.SEED_INSTALL)
        self.check = redis_client.register_script(lua.CHECK)


@cache
def _scripts(url: str) -> Scripts:
    return Scripts(_client(url))


def scripts() -> Scripts:
    return _scripts(settings.FINOPS_GUARD_REDIS_URL)


def flush(redis_client: redis.Redis | None = None) -> None:
    """Drop every guard key."""
    c = redis_client or client()
    for key in c.scan_iter(match="g:*", count=1000):
        c.delete(key)


# The check, on every guarded call, runs on a connection of its own per thread, outside
# the pool: redis-py's pooled command path (the pool's lock, retry and metrics wrappers)
# costs as much CPU as the round trip itself.
_line = threading.local()


def _forget_line() -> None:
    global _line
    _line = threading.local()


# A forked process (a gunicorn worker of a preloaded app) makes its own connections.
os.register_at_fork(after_in_child=_forget_line)


def check_connection() -> Any:
    """This thread's connection for the check, made with the client's settings; it is
    closed when the thread ends. A new Redis URL makes a new one."""
    url = settings.FINOPS_GUARD_REDIS_URL
    conn = getattr(_line, "conn", None)
    if conn is None or _line.url != url:
        pool = client().connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        _line.conn, _line.url = conn, url
    return conn


def _fresh(conn: Any) -> None:
    """As the pool does before it lends a connection: one the server closed (or with a
    stray reply) is made again."""
    try:
        if conn.can_read():
            raise redis.ConnectionError("a reply nobody asked for")
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        conn.disconnect()
        conn.connect()


def check_run(args: list[Any]) -> Any:
    """EVALSHA of the check script on this thread's connection. After any failure but a
    script's error reply the connection is dropped, so no late reply is read as the next
    one's."""
    conn = check_connection()
    script = scripts().check
    try:
        _fresh(conn)
        conn.send_command("EVALSHA", script.sha, 0, *args)
        return conn.read_response()
    except redis.exceptions.NoScriptError:  # the server lost its scripts: load, run again
        return script(args=args)
    except redis.ResponseError:
        raise
    except BaseException:
        conn.disconnect()
        raise
