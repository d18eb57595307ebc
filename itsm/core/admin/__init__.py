"""The administration area at ``/admin``: the page kit plugins build their admin pages with
(:mod:`itsm.core.admin.kit`), the admin audit, and the core's own admin pages."""
