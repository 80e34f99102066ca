"""Dramatiq actors of Tuskbase. Importing this package sets the broker, then registers every actor."""

import dramatiq

from tuskbase.config import load
from tuskbase.observability import configure_logging
from tuskbase_workers.broker import make_broker

settings = load()
configure_logging(settings)  # the same format as the API's (TUSKBASE_LOG_FORMAT); `dramatiq --skip-logging`
broker = make_broker(settings)
dramatiq.set_broker(broker)

from tuskbase_workers import actors  # noqa: E402  (actors bind to the broker set above)

__all__ = ["actors", "broker"]
