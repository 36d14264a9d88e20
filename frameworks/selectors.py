"""Reads of call frameworks: a contact's script and where it stands (for the desk and for quality reviews)."""

from __future__ import annotations

import uuid

from frameworks import flow
from frameworks.models import ScriptRun


def run_view(interaction_id: uuid.UUID) -> dict | None:
    """The contact's script (name, version, steps), its completed steps with answers, and its progress
    (frameworks.flow.progress); None when it follows no script."""
    run = ScriptRun.objects.select_related("script").filter(interaction_id=interaction_id).first()
    if run is None:
        return None
    return {"script": run.script.name, "version": run.script.version, "steps": run.script.steps,
            "completed": run.completed, **flow.progress(run.script.steps, run.completed)}
