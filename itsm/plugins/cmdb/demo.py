"""The cmdb's demonstration data: a small graph from servers up to business services
used by the demo agencies (imported like any source, so it is idempotent)."""

from __future__ import annotations

from itsm.plugin import DemoContext

SERVERS = ("srv-app-01", "srv-app-02", "srv-db-01", "srv-mail-01")
DEMO_ITEMS = (
    *({"key": f"demo:{name}", "type": "server", "name": name, "location": "Data centre 1",
       "support_group": "Network", "attributes": {"hostname": name, "os": "Debian 12",
                                                  "cpu_count": 8, "environment": "production"}}
      for name in SERVERS),
    {"key": "demo:core-switch", "type": "network_device", "name": "core-switch-1",
     "support_group": "Network", "location": "Data centre 1",
     "attributes": {"role": "switch", "model": "48-port L3"}},
    {"key": "demo:pg-main", "type": "database", "name": "PostgreSQL main",
     "support_group": "Applications", "attributes": {"engine": "postgresql", "port": 5432}},
    {"key": "demo:permits-app", "type": "application", "name": "Permits application",
     "support_group": "Applications", "agency": "DOT", "attributes": {"version": "4.2"}},
    {"key": "demo:records-app", "type": "application", "name": "Health records application",
     "support_group": "Applications", "agency": "DOH", "attributes": {"version": "2.0"}},
    {"key": "demo:mail-app", "type": "application", "name": "Mail server",
     "support_group": "Network", "attributes": {"vendor": "Postfix"}},
    {"key": "demo:svc-permits", "type": "business_service", "name": "Road permits",
     "agency": "DOT", "used_by": ["DOT"], "attributes": {"criticality": "high"}},
    {"key": "demo:svc-records", "type": "business_service", "name": "Health records",
     "agency": "DOH", "used_by": ["DOH"], "attributes": {"criticality": "critical"}},
    {"key": "demo:svc-mail", "type": "business_service", "name": "E-mail and calendar",
     "used_by": ["DOT", "DOH"], "attributes": {"criticality": "high", "hours": "24x7"}},
)
DEMO_RELATIONS = (
    ("demo:srv-app-01", "connected_to", "demo:core-switch"),
    ("demo:srv-app-02", "connected_to", "demo:core-switch"),
    ("demo:srv-db-01", "connected_to", "demo:core-switch"),
    ("demo:srv-mail-01", "connected_to", "demo:core-switch"),
    ("demo:pg-main", "runs_on", "demo:srv-db-01"),
    ("demo:permits-app", "runs_on", "demo:srv-app-01"),
    ("demo:records-app", "runs_on", "demo:srv-app-02"),
    ("demo:permits-app", "depends_on", "demo:pg-main"),
    ("demo:records-app", "depends_on", "demo:pg-main"),
    ("demo:mail-app", "runs_on", "demo:srv-mail-01"),
    ("demo:permits-app", "part_of", "demo:svc-permits"),
    ("demo:records-app", "part_of", "demo:svc-records"),
    ("demo:mail-app", "part_of", "demo:svc-mail"),
)


def load_demo(ctx: DemoContext) -> None:
    from itsm.plugins.cmdb import importer

    rows = [importer._row(dict(item)) for item in DEMO_ITEMS]
    relations = [{"source": s, "kind": k, "target": t} for s, k, t in DEMO_RELATIONS]
    importer.reconcile(ctx.service(), rows, "demo", relations=relations)
