"""`make bench`: every benchmark package under bench/, one after the other."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.ispkg):
        print(f"\n== bench.{module} ==", flush=True)
        importlib.import_module(f"bench.{module}.__main__").main()


if __name__ == "__main__":
    main()
