"""HTTP surface of the push service (laid out as ARCHITECTURE.md, "Layers", says); nothing is served here yet."""

from typing import Any

ROUTES: list[Any] = []
