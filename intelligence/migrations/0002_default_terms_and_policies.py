"""A starting word list and flag policies; both are the admin's to change."""

from django.db import migrations

TERMS = {
    "abuse": ["idiot", "moron", "stupid", "shut up", "fuck", "fucking", "bitch", "bastard", "asshole", "dickhead",
              "piece of shit", "useless idiot", "incompetent idiot"],
    "threat": ["kill you", "i will find you", "hurt you", "beat you up", "burn down", "you will regret",
               "watch your back", "come down there"],
    "competitor": ["your competitor", "competitors", "cheaper elsewhere", "better deal elsewhere",
                   "other provider", "another provider"],
    "churn": ["cancel my account", "close my account", "cancel my subscription", "cancel my contract",
              "switching provider", "switch provider", "leaving you", "i am leaving", "i'm leaving"],
}
# kind: (priority boost while waiting, alert supervisors)
POLICIES = {"abuse": (0, True), "threat": (0, True), "competitor": (10, False), "churn": (20, True),
            "negative_sentiment": (10, False)}


def seed(apps, schema_editor):
    FlagTerm = apps.get_model("intelligence", "FlagTerm")
    FlagPolicy = apps.get_model("intelligence", "FlagPolicy")
    FlagTerm.objects.bulk_create([FlagTerm(term=t, kind=k) for k, terms in TERMS.items() for t in terms],
                                 ignore_conflicts=True)
    for kind, (boost, alert) in POLICIES.items():
        FlagPolicy.objects.get_or_create(kind=kind, defaults={"priority_boost": boost, "alert_supervisors": alert})


class Migration(migrations.Migration):
    dependencies = [("intelligence", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
