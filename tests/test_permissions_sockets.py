"""The permission matrix of the WebSockets: who may follow a customer's timeline, the agent socket, the wallboard.

The same two teams as tests/test_permissions.py. A socket refused for scope closes with 4403 before accept and
the attempt is on the audit log. On the wallboard a team supervisor hears their teams' queues and agents; a
message about another team arrives as a bare `wallboard.skipped` tick with its `seq`, so the stream shows no
gap and nothing of the other team's work.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from contactcenter import realtime
from contactcenter.models import AuditEntry
from customers.identity import identity
from events.store import Actor, Metadata
from interactions import services as interaction_services
from routing.models import Team
from routing.realtime import WALLBOARD
from tests.routing.factories import make_agent, make_queue
from tests.routing.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata(actor=Actor("system", name="test"))


@pytest.fixture
def world():
    from contactcenter.roles import ensure_roles

    ensure_roles()  # the groups (a transactional test's flush took the migration's)
    make_queue("billing", skills={"billing": 1})
    make_queue("support", skills={"support": 1})
    team_a, team_b = Team.objects.create(name="A"), Team.objects.create(name="B")
    ann = make_agent("ann", skills={"billing": 3}, team=team_a, presence="offline")
    bob = make_agent("bob", skills={"support": 3}, team=team_b, presence="offline")
    users = get_user_model().objects
    sup_a, sup_b = users.create_user("sup_a", password="x"), users.create_user("sup_b", password="x")
    team_a.supervisors.add(sup_a)
    team_b.supervisors.add(sup_b)
    compliance = users.create_user("compliance", password="x")
    compliance.groups.add(Group.objects.get(name="compliance"))
    made = interaction_services.interaction_create(channel="chat", direction="inbound", meta=M, queue="support",
                                                   ident=identity("email", "bob-customer@example.com"))
    iid = made.interaction.id
    interaction_services.interaction_offer(interaction_id=iid, agent_id="bob", meta=M)
    interaction_services.interaction_accept(interaction_id=iid, agent_id="bob", meta=M)
    return {"ann": ann.user, "bob": bob.user, "sup_a": sup_a, "sup_b": sup_b, "compliance": compliance,
            "nobody": users.create_user("nobody", password="x"),
            "admin": users.create_user("admin", password="x", is_staff=True),
            "customer": made.interaction.customer_id}


def _opens(path: str, user) -> object:
    async def go():
        communicator, connected, code = await connect(path, user)
        await communicator.disconnect()
        return True if connected else code

    return async_to_sync(go)()


def test_who_may_open_which_socket(world):
    timeline = f"/ws/customers/{world['customer']}/timeline/"
    expected = {
        timeline: {"ann": 4403, "sup_a": 4403, "nobody": 4403, "bob": True, "sup_b": True, "compliance": True,
                   "admin": True},
        "/ws/agent/": {"ann": True, "bob": True, "sup_a": 4403, "sup_b": 4403, "compliance": 4403, "nobody": 4403,
                       "admin": 4403},
        "/ws/wallboard/": {"ann": 4403, "bob": 4403, "nobody": 4403, "compliance": 4403, "sup_a": True,
                           "sup_b": True, "admin": True},
    }
    seen = {path: {role: _opens(path, world[role]) for role in roles} for path, roles in expected.items()}
    assert seen == expected
    denied = AuditEntry.objects.filter(outcome="denied", action__startswith="WS ")
    assert denied.filter(username="ann", object_type="customer", object_id=str(world["customer"])).exists()
    assert denied.filter(username="nobody", action="WS /ws/wallboard/").exists()


def test_a_team_supervisor_hears_only_their_teams_on_the_wallboard(world):
    async def scenario():
        board_a, ok_a, _ = await connect("/ws/wallboard/", world["sup_a"])
        board_b, ok_b, _ = await connect("/ws/wallboard/", world["sup_b"])
        admin, ok_admin, _ = await connect("/ws/wallboard/", world["admin"])
        assert ok_a and ok_b and ok_admin
        pushed = realtime.notify([
            (WALLBOARD, {"type": "routing.agent", "agent_id": "bob", "presence": "break", "reason": "lunch",
                         "since": None}),
            (WALLBOARD, {"type": "routing.agent", "agent_id": "ann", "presence": "available", "reason": "",
                         "since": None}),
        ])
        await asyncio.wrap_future(pushed)
        heard = {}
        for name, board in (("sup_a", board_a), ("sup_b", board_b), ("admin", admin)):
            heard[name] = [await board.receive_json_from(timeout=5) for _ in range(2)]
            await board.disconnect()
        return heard

    heard = async_to_sync(scenario)()
    kinds = {name: [(m["type"], m.get("agent_id")) for m in msgs] for name, msgs in heard.items()}
    assert kinds == {"sup_a": [("wallboard.skipped", None), ("routing.agent", "ann")],
                     "sup_b": [("routing.agent", "bob"), ("wallboard.skipped", None)],
                     "admin": [("routing.agent", "bob"), ("routing.agent", "ann")]}
    # The skipped tick keeps the numbering: each board sees consecutive seqs, no gap to resync over.
    for msgs in heard.values():
        assert msgs[1]["seq"] == msgs[0]["seq"] + 1
    assert "lunch" not in str(heard["sup_a"])

