"""Scripts (configuration, edited in the admin, versioned) and each contact's run through one (write-side state
kept with its events: frameworks.events)."""

from __future__ import annotations

from django.db import models


class Script(models.Model):
    """A versioned call framework. A version a contact has run is never changed: editing it in the admin saves
    the next version (frameworks.flow explains the steps)."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    steps = models.JSONField(help_text="the flow: a list of steps (key, kind, title, prompt, required, gates, "
                                       "options for decisions): docs/PROTOCOLS.md")
    queues = models.JSONField(default=list, blank=True, help_text="queue names whose contacts start with it")
    dispositions = models.JSONField(default=list, blank=True,
                                    help_text="contact reasons (disposition codes) an agent may switch it on for")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="script_version_uniq")]
        ordering = ["name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class ScriptRun(models.Model):
    """One contact's progress through one script version."""

    id = models.UUIDField(primary_key=True)
    interaction_id = models.UUIDField(unique=True)
    customer_id = models.UUIDField()
    script = models.ForeignKey(Script, on_delete=models.PROTECT, related_name="runs")
    completed = models.JSONField(default=dict, help_text="step key -> answer")
    started_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=0, help_text="of the run's event stream")
