"""HTTP surface of the push service (see DESIGN.md); nothing is served here yet."""

from typing import Any

ROUTES: list[Any] = []
