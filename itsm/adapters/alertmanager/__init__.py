"""Prometheus Alertmanager: firing alert groups open incidents, resolved ones resolve them.

Alertmanager's webhook receiver POSTs to ``/api/v1/integrations/alertmanager`` with a
Bearer token of an itsm user (an agent or a service account made with ``itsm users
add`` and ``itsm users token``); that user is who acts, with the usual permissions::

    receivers:
      - name: itsm
        webhook_configs:
          - url: https://itsm.example.org/api/v1/integrations/alertmanager
            send_resolved: true
            http_config:
              authorization:
                credentials: <token>

One alert group (Alertmanager's ``groupKey``) is one record while it is open: the first
firing notification opens it, later different notifications of the same group add a
work note listing the firing alerts, an identical repeated delivery adds nothing. The
``resolved`` notification adds a work note and, when ``resolve_on_resolved`` is true,
resolves the record with ``resolution_code``. A group firing again after that opens a
new record.

Settings (``[plugins.alertmanager]``):

- ``record_type`` (``"incident"``): the record type created;
- ``resolve_on_resolved`` (true), ``resolve_transition`` (``"resolve"``),
  ``resolution_code`` (``"solved"``);
- ``severity_label`` (``"severity"``) and the table ``severity``: label value ->
  ``[impact, urgency]`` (``critical = [1, 1]``, ``warning = [2, 2]``, ``default = [3, 3]``);
- ``service_label`` (``"service"``): the label copied to ``affected_service``;
- ``rules``: an array of tables evaluated in order after the defaults, each
  ``match`` (label -> value, or a list of values) and ``set`` (field -> value)::

      [[plugins.alertmanager.rules]]
      match = { team = "network" }
      set = { category = "network", urgency = 1 }

Fields a record type's schema does not have are left out (``channel`` is ``monitoring``
when the type has one).
"""

from __future__ import annotations

from itsm.plugin import Plugin, hookimpl

plugin = Plugin(
    name="alertmanager",
    version="0.1.0",
    description="Prometheus Alertmanager webhook: alert groups open and resolve incidents.",
    requires_itsm=">=0.1,<1",
    settings={
        "record_type": "incident",
        "resolve_on_resolved": True,
        "resolve_transition": "resolve",
        "resolution_code": "solved",
        "severity_label": "severity",
        "severity": {"critical": [1, 1], "warning": [2, 2], "default": [3, 3]},
        "service_label": "service",
        "rules": [],
    },
)


@hookimpl
def itsm_blueprints():
    from itsm.adapters.alertmanager.api import bp

    return [bp]
