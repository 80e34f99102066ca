"""The Dramatiq broker chosen by settings: Postgres (same database, no extra server) or RabbitMQ."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq_postgres import PostgresBroker

from tuskbase.config import Settings
from tuskbase.db import admin_url


def make_broker(settings: Settings) -> dramatiq.Broker:
    if settings.broker_url:
        return RabbitmqBroker(url=settings.broker_url)
    # Results are not used: actors record outcomes in their own tables, which RLS and the API can read.
    return PostgresBroker(url=admin_url(settings), results=False)
