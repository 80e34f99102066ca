"""What a service hands the application (ARCHITECTURE.md, "Adding a service"): its Litestar routes, the fast ASGI
paths it serves before the framework, and its startup and shutdown hooks. `app.py` lists the services by name
and installs one dispatcher for every fast path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Hook = Callable[[Any], Awaitable[None]]  # called with the Litestar app


@dataclass(frozen=True)
class FastPath:
    """A path served before Litestar's router and middleware stack: the polled hot paths, where the stack would
    cost about as much Python per request as the work itself (measured in bench/). The service still declares a
    Litestar route for it (the documented one, which serves if the fast path is removed); request ids, metrics,
    the access log and the body deadline still apply: app.py wraps the dispatcher, fast paths included, in them."""

    path: str
    handler: Callable[[Any], ASGIApp]  # made once the services have started, from the app (its state)
    prefix: bool = False  # the path and everything below it
    method: str | None = None  # None: every method

    def matches(self, path: str, method: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.prefix:
            return path == self.path or path.startswith(self.path + "/")
        return path == self.path


@dataclass(frozen=True)
class Service:
    """One service of the API: `SERVICE` in its package's routes.py."""

    name: str
    routes: Sequence[Any] = ()  # Litestar handlers or routers, each translating the service's errors once
    fast: Sequence[FastPath] = ()
    startup: Sequence[Hook] = ()
    shutdown: Sequence[Hook] = ()
