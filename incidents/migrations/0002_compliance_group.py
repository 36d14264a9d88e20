"""The `compliance` group: its members read every incident report (and nothing else by it)."""

from django.db import migrations


def create(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    ct, _ = ContentType.objects.get_or_create(app_label="incidents", model="incidentreport")
    perm, _ = Permission.objects.get_or_create(content_type=ct, codename="read_incident_reports",
                                               defaults={"name": "Can read every incident report (compliance)"})
    group, _ = Group.objects.get_or_create(name="compliance")
    group.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length"),
                    ("contenttypes", "0002_remove_content_type_name")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
