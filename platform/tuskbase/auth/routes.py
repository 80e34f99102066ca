"""HTTP surface of the auth service (see DESIGN.md); nothing is served here yet."""

from typing import Any

ROUTES: list[Any] = []
