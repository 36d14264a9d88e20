"""A recorded day made by the live routing engine: real services, the real database, a simulated clock.

Contacts arrive, agents sign in, take breaks and sign out, accept their
offers after a few seconds, handle, end and wrap up, and customers who wait
too long hang up, all through the same service calls the API makes. After
each change a routing pass runs as the routing worker would
(routing.services.dispatch_all), and while anything waits the periodic sweep
runs every ROUTING_SWEEP_SECONDS (expansion steps, after-call timeouts).
time-machine moves the clock from one moment to the next, so the events'
business times (`occurred_at`) are those of the day, and a four-hour day
records in seconds. What routing did is whatever the live engine decided:
nothing here chooses an agent.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from dataclasses import dataclass

import time_machine

from customers.identity import identity
from customers.models import CustomerProfile
from customers.services import customer_register
from events.store import Actor, Metadata
from interactions import services as interaction_services
from interactions.models import Interaction
from routing import services
from routing.models import Work
from tests.routing.factories import make_agent, make_queue

START = dt.datetime(2026, 11, 16, 8, 0, tzinfo=dt.UTC)
SWEEP_SECONDS = 5
ARRIVE, PRESENCE, ACCEPT, END, WRAP, ABANDON, SWEEP = range(7)


@dataclass
class RecordedDay:
    start: dt.datetime
    end: dt.datetime
    arrivals: int
    answered: int
    abandoned: int


def set_up_center() -> None:
    """Three queues and nine agents of mixed skills, all signed out."""
    make_queue("billing", skills={"billing": 3}, expansion=[{"after_seconds": 30, "min_proficiency_delta": -1}],
               service_level_seconds=30)
    make_queue("sales", skills={"sales": 2}, vip_boost=5, service_level_seconds=30)
    make_queue("support", skills={"support": 2}, secondary={"billing": 2},
               expansion=[{"after_seconds": 45, "admit_secondary": True}], service_level_seconds=60)
    skills = [{"billing": 5}, {"billing": 3, "sales": 2}, {"billing": 2, "support": 4}, {"sales": 4},
              {"sales": 3, "support": 2}, {"support": 5}, {"billing": 4, "sales": 3, "support": 3},
              {"billing": 3, "support": 2}, {"sales": 2, "billing": 2}]
    for i, levels in enumerate(skills):
        make_agent(f"agent{i}", skills=levels, presence="offline", capacity={"chat": 2, "voice": 1})


def record_day(*, hours: float = 3, contacts: int = 260, seed: int = 1) -> RecordedDay:
    """Set up the center and run a day of `contacts` arrivals over `hours` through the live services."""
    set_up_center()
    rnd = random.Random(seed)
    end = START + dt.timedelta(hours=hours)
    length = hours * 3600
    heap: list = []
    seq = [0]

    def at(t: float, kind: int, item=None):
        seq[0] += 1
        heapq.heappush(heap, (t, kind, seq[0], item))

    # Shifts: six agents from the start, three from the second half hour; each takes one break; all sign out
    # at the end.
    for i in range(9):
        on = 0.0 if i < 6 else 1800.0 + 120 * i
        at(on, PRESENCE, (f"agent{i}", "available"))
        pause = rnd.uniform(on + 900, length - 1800)
        at(pause, PRESENCE, (f"agent{i}", "break"))
        at(pause + rnd.uniform(600, 1200), PRESENCE, (f"agent{i}", "available"))
        at(length + 600, PRESENCE, (f"agent{i}", "offline"))
    t = 0.0
    for n in range(contacts):
        t += rnd.expovariate(contacts / length)
        if t >= length:
            break
        voice = rnd.random() < 0.4
        contact = {"n": n, "channel": "voice" if voice else "chat",
                   "queue": rnd.choices(["billing", "sales", "support"], [5, 3, 2])[0],
                   "handle": min(1500.0, max(30.0, rnd.expovariate(1 / (200 if voice else 320)))),
                   "wrap": rnd.uniform(10, 50) if voice else 0.0, "delay": rnd.uniform(2, 6),
                   "patience": rnd.expovariate(1 / 150), "vip": rnd.random() < 0.15}
        at(t, ARRIVE, contact)
    arrivals = sum(1 for item in heap if item[1] == ARRIVE)
    offered: set = set()
    answered = abandoned = 0
    agent_meta = {}
    with time_machine.travel(START, tick=False) as clock:
        sweep_due = None
        while heap:
            t, kind, _, item = heapq.heappop(heap)
            now = START + dt.timedelta(seconds=t)
            clock.move_to(now)
            if kind == ARRIVE:
                if item["vip"]:  # a known VIP (sales serves them first: vip_boost)
                    vip = customer_register(display_name=f"VIP {item['n']}", meta=Metadata(),
                                            email=f"day-customer{item['n']}@example.com").customer_id
                    CustomerProfile.objects.create(customer_id=vip, display_name="VIP", registered_at=now, version=1,
                                                   vip_tier="gold")
                result = interaction_services.interaction_create(
                    channel=item["channel"], direction="inbound", meta=Metadata(),
                    ident=identity("email", f"day-customer{item['n']}@example.com"), queue=item["queue"])
                item["id"] = result.interaction.id
                at(t + item["patience"], ABANDON, item)
            elif kind == PRESENCE:
                name, presence = item
                meta = agent_meta.setdefault(name, Metadata(actor=Actor("agent", name, name)))
                services.agent_presence_set(agent_id=name, presence=presence, meta=meta)
            elif kind == ACCEPT:
                iid, agent = item["id"], item["agent"]
                if Interaction.objects.filter(id=iid, status="offered", agent_id=agent).exists():
                    interaction_services.interaction_accept(interaction_id=iid, agent_id=agent,
                                                            meta=Metadata(actor=Actor("agent", agent, agent)))
                    answered += 1
                    at(t + item["handle"], END, item)
            elif kind == END:
                interaction_services.interaction_end(interaction_id=item["id"], reason="resolved", meta=Metadata())
                at(t + item["wrap"], WRAP, item)
            elif kind == WRAP:
                interaction_services.interaction_wrap_up(interaction_id=item["id"], disposition="resolved",
                                                         meta=Metadata())
            elif kind == ABANDON:
                row = Interaction.objects.filter(id=item["id"]).values_list("status", flat=True).first()
                if row in ("queued", "offered"):
                    interaction_services.interaction_abandon(interaction_id=item["id"], meta=Metadata(),
                                                             waited_seconds=int(item["patience"]))
                    abandoned += 1
            if kind == SWEEP:
                sweep_due = None
                services.sweep(now=now)
            else:
                services.dispatch_all(now=now)  # what the routing worker does on the request a change made
            # Offers made by this pass (or the sweep's) are accepted after the contact's answer delay.
            by_id = {c["id"]: c for _, k, _, c in heap if k == ABANDON}
            for iid, agent in Work.objects.filter(status=Work.OFFERED).values_list("interaction_id", "agent_id"):
                if (iid, agent) not in offered and iid in by_id:
                    offered.add((iid, agent))
                    contact = by_id[iid]
                    contact["agent"] = agent
                    at(t + contact["delay"], ACCEPT, dict(contact))
            if sweep_due is None and Work.objects.filter(status=Work.WAITING).exists():
                sweep_due = (t // SWEEP_SECONDS + 1) * SWEEP_SECONDS
                at(sweep_due, SWEEP)
    return RecordedDay(START, end, arrivals, answered, abandoned)
