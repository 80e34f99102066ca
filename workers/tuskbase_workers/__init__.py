"""Dramatiq actors of Tuskbase. Importing this package sets the broker, then registers every actor."""

import dramatiq

from tuskbase.config import load
from tuskbase_workers.broker import make_broker

broker = make_broker(load())
dramatiq.set_broker(broker)

from tuskbase_workers import actors  # noqa: E402  (actors bind to the broker set above)

__all__ = ["actors", "broker"]
