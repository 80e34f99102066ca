"""HTTP surface of the push service (see ARCHITECTURE.md, "Adding a service"); nothing is served here yet."""

from tuskbase.service import Service

SERVICE = Service("push")
