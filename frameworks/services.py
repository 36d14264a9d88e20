"""Running call frameworks: a contact starts its queue's script when an agent accepts it; the agent records each
step; required steps gate account changes until they are done."""

from __future__ import annotations

import uuid

from django.db import transaction

from events import store
from events.store import Actor, Metadata
from frameworks import flow
from frameworks.events import ScriptStarted, StepCompleted
from frameworks.models import Script, ScriptRun
from interactions import domain as idomain
from interactions import events as iev

SYSTEM = Metadata(actor=Actor(type="system", id="frameworks"))


def script_for(*, queue: str | None = None, disposition: str | None = None, name: str | None = None) -> Script | None:
    """The latest active version of the script for a queue, a contact reason (disposition) or by name."""
    scripts = Script.objects.filter(active=True)
    if name:
        scripts = scripts.filter(name=name)
    elif disposition:
        scripts = scripts.filter(dispositions__contains=[disposition])
    elif queue:
        scripts = scripts.filter(queues__contains=[queue])
    else:
        return None
    return scripts.order_by("-version", "name").first()


def on_interaction_changed(row, new_events: list) -> None:
    """Accepted by an agent (the first time): the contact starts its queue's script, if it has one."""
    if not any(isinstance(e, iev.InteractionAccepted) for e in new_events):
        return
    if ScriptRun.objects.filter(interaction_id=row.id).exists():
        return  # a transfer: the script goes on where it was
    script = script_for(queue=row.queue)
    if script is not None:
        _start(row.id, row.customer_id, script, SYSTEM)


def script_switch(*, interaction_id: uuid.UUID, agent_id: str, meta: Metadata, disposition: str = "",
                  script: str = "") -> ScriptRun:
    """The agent switches the contact to the script of a contact reason (`disposition`) or to one by name.
    Completed steps whose keys the new script has carry over."""
    from interactions.models import Interaction

    chosen = script_for(disposition=disposition or None, name=script or None)
    if chosen is None:
        raise idomain.InvalidValue("script" if script else "disposition", "no active script for that")
    with transaction.atomic():
        row = _handled(Interaction, interaction_id, agent_id)
        return _start(row.id, row.customer_id, chosen, meta, disposition=disposition)


def step_complete(*, interaction_id: uuid.UUID, agent_id: str, step: str, answer: str,
                  meta: Metadata) -> ScriptRun:
    """Record that the agent completed a step (frameworks.StepCompleted). Refused: a step the contact's script does
    not have or has skipped (a decision chose another branch), one done already, a decision answer that is
    not one of its options."""
    from interactions.models import Interaction

    with transaction.atomic():
        row = _handled(Interaction, interaction_id, agent_id)
        run = ScriptRun.objects.select_for_update().select_related("script").filter(interaction_id=row.id).first()
        if run is None:
            raise idomain.TransitionRefused("this contact follows no script: switch one on first")
        steps = {s["key"]: s for s in run.script.steps}
        if step not in steps:
            raise idomain.InvalidValue("step", f"{run.script} has no step {step!r}")
        if step in run.completed:
            raise idomain.TransitionRefused(f"step {step!r} is done already")
        if step in flow.progress(run.script.steps, run.completed)["skipped"]:
            raise idomain.TransitionRefused(f"step {step!r} is not on the branch this contact took")
        spec = steps[step]
        if spec["kind"] == "decision" and answer not in [o["value"] for o in spec["options"]]:
            raise idomain.InvalidValue("answer", "choose one of " + ", ".join(o["value"] for o in spec["options"]))
        answer = answer if spec["kind"] == "decision" else idomain.masked(answer)
        _append(run, StepCompleted(interaction_id=row.id, step=step, kind=spec["kind"], answer=answer,
                                   by=agent_id), meta)
        run.completed = {**run.completed, step: answer}
        run.save(update_fields=["completed", "version"])
    return run


def closed_gate(interaction_id: uuid.UUID, gate: str) -> str | None:
    """Why `gate` (e.g. account_changes) is still closed on this contact, or None when it is open (no script,
    or its gating steps are done)."""
    run = ScriptRun.objects.select_related("script").filter(interaction_id=interaction_id).first()
    if run is None:
        return None
    pending = [s for s in run.script.steps if gate in s.get("gates", []) and s["key"] not in run.completed]
    if not pending:
        return None
    return (f"{gate.replace('_', ' ')} need step {pending[0]['key']!r} ({pending[0]['title']}) of {run.script} "
            "done first")


def _handled(Interaction, interaction_id, agent_id):
    row = Interaction.objects.select_for_update().filter(id=interaction_id).first()
    if row is None:
        raise idomain.InvalidValue("interaction_id", "no such interaction")
    if row.agent_id != agent_id or row.status not in idomain.CONNECTED + (idomain.WRAP_UP,):
        raise idomain.TransitionRefused("work the script of a contact you are handling")
    return row


def _start(interaction_id, customer_id, script: Script, meta: Metadata, *, disposition: str = "") -> ScriptRun:
    run = ScriptRun.objects.select_for_update().filter(interaction_id=interaction_id).first()
    event = ScriptStarted(interaction_id=interaction_id, script=script.name, version=script.version,
                          disposition=disposition)
    if run is None:
        run = ScriptRun(id=store.uuid7(), interaction_id=interaction_id, customer_id=customer_id, script=script)
        store.append(stream_type="script_run", stream_id=run.id, customer_id=customer_id, events=[event],
                     expected_version=0, meta=meta)
        run.version = 1
        run.save(force_insert=True)
        return run
    keys = {s["key"] for s in script.steps}
    _append(run, event, meta)
    run.script, run.completed = script, {k: v for k, v in run.completed.items() if k in keys}
    run.save(update_fields=["script", "completed", "version"])
    return run


def _append(run: ScriptRun, event, meta: Metadata) -> None:
    store.append(stream_type="script_run", stream_id=run.id, customer_id=run.customer_id, events=[event],
                 expected_version=run.version, meta=meta)
    run.version += 1
