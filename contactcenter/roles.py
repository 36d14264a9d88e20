"""The four roles as Django groups, with their permissions: created (and topped up) after every migrate.

- `agent`: no extra permission; what an agent sees is their scope (contactcenter.access).
- `supervisor`: `contactcenter.supervise`; sees their teams (name them on the teams in the admin).
- `admin`: every permission, for the Django admin; the admin *role* in the API is a staff user.
- `compliance`: reads every incident report, the audit log, and exports a person's data.

The groups are the admin's to change afterwards: this only adds what is
missing, it never takes a permission away.
"""

from __future__ import annotations

ROLE_PERMISSIONS = {
    "agent": [],
    "supervisor": ["contactcenter.supervise"],
    "compliance": ["incidents.read_incident_reports", "contactcenter.read_audit_log",
                   "contactcenter.export_personal_data", "contactcenter.view_auditentry"],
}


def ensure_roles(**_kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    def perms(names):
        wanted = [tuple(name.split(".", 1)) for name in names]
        found = Permission.objects.filter(content_type__app_label__in={a for a, _ in wanted},
                                          codename__in={c for _, c in wanted}).select_related("content_type")
        return [p for p in found if (p.content_type.app_label, p.codename) in wanted]

    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        if names:
            group.permissions.add(*perms(names))
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.add(*Permission.objects.exclude(group=admin))
