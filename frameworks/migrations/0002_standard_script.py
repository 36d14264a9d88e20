"""A starting call framework, attached to no queue yet (the admin's to attach, change or replace)."""

from django.db import migrations

STEPS = [
    {"key": "greeting", "kind": "greeting", "title": "Greet",
     "prompt": "Thank you for contacting us, my name is … How can I help you today?", "required": True},
    {"key": "identity", "kind": "identity", "title": "Verify identity",
     "prompt": "Before I look at your account, may I confirm your date of birth and the postcode on it?",
     "required": True, "gates": ["account_changes"]},
    {"key": "discovery", "kind": "discovery", "title": "Understand the need",
     "prompt": "Ask open questions; restate the problem in the customer's words and confirm it."},
    {"key": "route", "kind": "decision", "title": "Can you resolve it now?",
     "options": [{"value": "resolve", "label": "Yes: resolve it", "next": "resolution"},
                 {"value": "escalate", "label": "No: escalate with the response time", "next": "confirmation"}]},
    {"key": "resolution", "kind": "resolution", "title": "Resolve",
     "prompt": "Explain what you are doing and what the customer will see."},
    {"key": "confirmation", "kind": "confirmation", "title": "Confirm",
     "prompt": "Has that resolved it for you? Is there anything else I can help with?", "required": True},
    {"key": "closing", "kind": "closing", "title": "Close",
     "prompt": "Thank the customer; say what happens next and when.", "required": True},
]


def seed(apps, schema_editor):
    Script = apps.get_model("frameworks", "Script")
    if not Script.objects.filter(name="Standard contact").exists():
        Script.objects.create(name="Standard contact", version=1, steps=STEPS, queues=[],
                              dispositions=["general", "account change"])


class Migration(migrations.Migration):
    dependencies = [("frameworks", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
