"""The workers' psycopg pool: Dramatiq actors run in threads, so they share one thread-safe pool."""

from __future__ import annotations

import threading

from psycopg_pool import ConnectionPool

from tuskbase.config import load
from tuskbase.db import admin_url

_pool: ConnectionPool | None = None
_lock = threading.Lock()


def pool() -> ConnectionPool:
    global _pool
    with _lock:
        if _pool is None:
            settings = load()
            _pool = ConnectionPool(admin_url(settings), min_size=1, max_size=settings.worker_threads + 1,
                                   kwargs={"autocommit": True}, open=True)
        return _pool
