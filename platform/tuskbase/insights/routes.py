"""HTTP surface of the insights service (see ARCHITECTURE.md, "Adding a service"); nothing is served here yet."""

from tuskbase.service import Service

SERVICE = Service("insights")
