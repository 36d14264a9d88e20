"""Routing read models: agents' presence, from routing.AgentPresenceChanged."""

from __future__ import annotations

from events.projection import Projection, register
from events.store import Envelope
from routing.events import AgentPresenceChanged
from routing.models import AgentState


def on_presence_changed(env: Envelope) -> None:
    """Upsert the agent's state; an older change than the one applied changes nothing (safe to apply twice)."""
    d = env.data
    updated = AgentState.objects.filter(agent_id=d["agent_id"], version__lt=env.stream_version).update(
        presence=d["presence"], reason=d.get("reason", ""), since=env.occurred_at, version=env.stream_version)
    if not updated and not AgentState.objects.filter(agent_id=d["agent_id"]).exists():
        AgentState.objects.create(agent_id=d["agent_id"], presence=d["presence"], reason=d.get("reason", ""),
                                  since=env.occurred_at, version=env.stream_version, changes=1)
    elif updated:
        from django.db.models import F

        AgentState.objects.filter(agent_id=d["agent_id"]).update(changes=F("changes") + 1)


agent_states = register(
    Projection(
        name="routing.agent_states",
        tables=[AgentState],
        handlers={AgentPresenceChanged: [on_presence_changed]},
    )
)
