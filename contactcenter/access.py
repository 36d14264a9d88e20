"""Who may see what: the roles, each user's scope, and the audit log of denials and sensitive reads.

The roles are Django groups, seeded by migration contactcenter/0002 and
managed in the admin (docs/SECURITY.md has the matrix):

- **agent**: their own interactions (offered to them, in their hands, or ever
  accepted by them) and those waiting in their queues (a queue is an agent's
  when they hold every primary skill it asks for, or one of its secondary
  skills; a queue that asks for none is everyone's); the customers they are
  serving or have served.
- **supervisor** (permission `contactcenter.supervise`, or being named a
  supervisor of a team): the interactions and customers of the agents of the
  teams they supervise, and of those teams' queues.
- **admin** (staff): everything.
- **compliance** (permission `incidents.read_incident_reports`): every
  incident report, the audit log and subject-access exports; reads every
  interaction and customer, commands none.

An object outside the caller's scope answers 404, exactly as one that does
not exist, so its existence does not leak; the attempt is written to the
audit log. Scope checks are queries over indexed columns, one per request.
"""

from __future__ import annotations

import logging
import uuid

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, BasePermission

log = logging.getLogger(__name__)

ROLES = ("agent", "supervisor", "admin", "compliance")


# --- roles --------------------------------------------------------------------

def _cached(user, name: str, compute):
    # Per request object: a user's role and scope are read once per request, not once per check.
    cache = user.__dict__.setdefault("_access_cache", {})
    if name not in cache:
        cache[name] = compute()
    return cache[name]


def is_admin(user) -> bool:
    """A superuser, or a staff user, except one in the `compliance` group (and not the `admin` group): compliance
    officers are made staff only to read the audit log in the admin."""
    if not (user.is_authenticated and user.is_active and (user.is_superuser or user.is_staff)):
        return False
    return user.is_superuser or not _cached(user, "compliance_staff", lambda: set(
        user.groups.filter(name__in=("compliance", "admin")).values_list("name", flat=True)) == {"compliance"})


def is_supervisor(user) -> bool:
    """An admin, a holder of `contactcenter.supervise`, or a supervisor of some team."""
    if not user.is_authenticated:
        return False
    return is_admin(user) or _cached(user, "supervisor", lambda: user.has_perm("contactcenter.supervise")
                                     or user.supervised_teams.exists())


def is_compliance(user) -> bool:
    return bool(user.is_authenticated and user.has_perm("incidents.read_incident_reports"))


def reads_everything(user) -> bool:
    """Admins and compliance read every interaction and customer (compliance commands none)."""
    return is_admin(user) or is_compliance(user)


# --- scope --------------------------------------------------------------------

def supervised_agents(user) -> list[str]:
    """Usernames of the agents in the teams `user` supervises."""
    from routing.models import Agent

    return _cached(user, "team_agents", lambda: list(
        Agent.objects.filter(team__supervisors=user).values_list("user__username", flat=True)))


def agent_queues(usernames: list[str]) -> list[str]:
    """The queues served by any of these agents (see the module docstring for what makes a queue theirs)."""
    if not usernames:
        return []
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT q.name FROM routing_queue q
            WHERE EXISTS (
                SELECT 1 FROM routing_agent a JOIN auth_user u ON u.id = a.user_id
                WHERE u.username = ANY(%(agents)s)
                  AND NOT EXISTS (
                      SELECT 1 FROM routing_queueskill qs
                      WHERE qs.queue_id = q.name AND NOT qs.secondary
                        AND NOT EXISTS (SELECT 1 FROM routing_agentskill s
                                        WHERE s.agent_id = a.id AND s.skill_id = qs.skill_id))
                  AND (EXISTS (SELECT 1 FROM routing_queueskill qs WHERE qs.queue_id = q.name AND NOT qs.secondary)
                       OR NOT EXISTS (SELECT 1 FROM routing_queueskill qs WHERE qs.queue_id = q.name)
                       OR EXISTS (SELECT 1 FROM routing_queueskill qs JOIN routing_agentskill s
                                  ON s.skill_id = qs.skill_id AND s.agent_id = a.id
                                  WHERE qs.queue_id = q.name AND qs.secondary)))
            """,
            {"agents": list(usernames)},
        )
        return [name for (name,) in cur.fetchall()]


def _scope_agents(user) -> list[str]:
    """Whose work `user` sees: themself, plus the agents of their teams for a supervisor."""
    me = user.get_username()
    return [me, *supervised_agents(user)] if is_supervisor(user) else [me]


def _scope_queues(user) -> list[str]:
    return _cached(user, "queues", lambda: agent_queues(_scope_agents(user)))


def interactions_visible(user, qs: QuerySet | None = None) -> QuerySet:
    """The interactions `user` may see (the module docstring says whose)."""
    from contactcenter.models import Served
    from interactions.models import Interaction

    qs = Interaction.objects.all() if qs is None else qs
    if reads_everything(user):
        return qs
    agents = _scope_agents(user)
    handled = Served.objects.filter(agent_id__in=agents).values("interaction_id")
    return qs.filter(Q(agent_id__in=agents) | _waiting_in(_scope_queues(user)) | Q(id__in=handled))


def _waiting_in(queues, statuses=None) -> Q:
    """Work still waiting in those queues: once an agent has it, it is theirs (and their team's), not the
    queue's; the queue column keeps its last queue for the reports."""
    from interactions import domain

    return Q(queue__in=queues, status__in=statuses or domain.WAITING)


def may_see_interaction(user, interaction_id) -> bool:
    return interactions_visible(user).filter(id=interaction_id).exists()


def may_command_interaction(user, interaction_id) -> bool:
    """Commands (hold, transfer, message, end…): admins, and agents and supervisors within their own scope
    (compliance reads every interaction but commands none)."""
    if is_admin(user):
        return True
    if not may_command(user):
        return False
    from contactcenter.models import Served
    from interactions import domain
    from interactions.models import Interaction

    # The contact in your (your team's) hands, one you started or served that is in nobody else's, or work
    # waiting in one of your queues to be taken by hand. Once it is in another agent's hands (a transfer), having
    # served it lets you read it, not command it.
    agents = _scope_agents(user)
    served = Served.objects.filter(agent_id__in=agents, interaction_id=interaction_id).values("interaction_id")
    return Interaction.objects.filter(
        Q(id=interaction_id) & (Q(agent_id__in=agents) | _waiting_in(_scope_queues(user), [domain.QUEUED])
                                | Q(id__in=served, agent_id__isnull=True))
    ).exists()


def customers_visible_ids(user) -> QuerySet | None:
    """A subquery of the customer ids `user` may see, or None for everyone (admins, compliance).

    Agents: the customers of interactions offered to them, in their hands or
    ever accepted by them. Supervisors: the same for every agent of their teams.
    A customer merged into another carries its visibility to the survivor.
    """
    if reads_everything(user):
        return None
    from contactcenter.models import Served
    from customers.models import Customer
    from interactions.models import Interaction

    agents = _scope_agents(user)
    direct = Interaction.objects.filter(agent_id__in=agents).values("customer_id")
    handled = Served.objects.filter(agent_id__in=agents).values("customer_id")
    merged = Customer.objects.filter(Q(id__in=direct) | Q(id__in=handled), merged_into__isnull=False).values(
        "merged_into")
    return Customer.objects.filter(Q(id__in=direct) | Q(id__in=handled) | Q(id__in=merged)).values("id")


def may_see_customer(user, customer_id) -> bool:
    if not user.is_authenticated:
        return False
    ids = customers_visible_ids(user)
    if ids is None:
        return True
    from customers.models import Customer

    return Customer.objects.filter(id=customer_id, id__in=ids).exists()


def record_served(agent_id: str, customer_id, interaction_id=None) -> None:
    """`agent_id` served this customer (accepted or started `interaction_id`, or registered them): from now on
    they may read the customer and that interaction. In the caller's transaction; a repeat changes nothing."""
    from contactcenter.models import Served

    Served.objects.bulk_create([Served(agent_id=agent_id, customer_id=customer_id, interaction_id=interaction_id)],
                               ignore_conflicts=True)


# --- the audit log ------------------------------------------------------------

def _client_ip(request) -> str | None:
    if request is None:
        return None
    meta = getattr(request, "META", None) or {}
    return meta.get("REMOTE_ADDR") or None


def audit(request, *, outcome: str, action: str, object_type: str = "", object_id="", reason: str = "",
          user=None) -> None:
    """Write one audit entry, committed on its own even if the caller's transaction rolls back.

    `request` may be a DRF/Django request or a Channels scope (for sockets).
    """
    from contactcenter.models import AuditEntry

    user = user if user is not None else getattr(request, "user", None) or (
        request.get("user") if isinstance(request, dict) else None)
    authenticated = bool(user is not None and user.is_authenticated)
    correlation = ""
    meta = getattr(request, "META", None)
    if meta:
        correlation = meta.get("HTTP_X_CORRELATION_ID", "")[:64]
    ip = _client_ip(request) if meta else (
        (request.get("client") or [None])[0] if isinstance(request, dict) else None)
    entry = AuditEntry(
        outcome=outcome, action=action[:100], object_type=object_type[:100], object_id=str(object_id)[:100],
        reason=reason[:200], user_id=str(user.pk) if authenticated else "",
        username=user.get_username() if authenticated else "", ip=ip, correlation_id=correlation,
    )
    if connection.in_atomic_block:
        _insert_outside_transaction(entry)
    else:
        entry.save()  # autocommit: on record at once


def _insert_outside_transaction(entry) -> None:
    # Inside a transaction (a command wrapped with its idempotency record, a
    # service's atomic block), the entry is written through a connection of
    # its own: a denied attempt stays on record when the request's
    # transaction rolls back, which is exactly when a denial happens.
    import psycopg

    from contactcenter.models import AuditEntry

    params = connection.settings_dict
    fields = [f for f in AuditEntry._meta.concrete_fields if f.name != "id"]
    entry.at = entry.at or timezone.now()
    values = [getattr(entry, f.attname) for f in fields]
    with psycopg.connect(dbname=params["NAME"], user=params["USER"] or None, password=params["PASSWORD"] or None,
                         host=params["HOST"] or None, port=params["PORT"] or None, autocommit=True) as conn:
        conn.execute(
            # The table and column names are the model's own; every value is a bound parameter.
            f"INSERT INTO {AuditEntry._meta.db_table} ({', '.join(f.column for f in fields)}) "  # nosec B608
            f"VALUES ({', '.join(['%s'] * len(fields))})",
            values,
        )


def deny(request, *, action: str, object_type: str, object_id, reason: str = "outside the caller's scope",
         message: str | None = None):
    """Record a denied attempt and raise 404 (the object's existence does not leak)."""
    audit(request, outcome="denied", action=action, object_type=object_type, object_id=object_id, reason=reason)
    raise NotFound(message or f"no such {object_type.replace('_', ' ')}")


def require_interaction(request, interaction_id, *, action: str, command: bool = False) -> uuid.UUID:
    """The interaction's id if `request.user` may see it (or command it), else 404 and an audit entry."""
    user = request.user
    allowed = may_command_interaction(user, interaction_id) if command else may_see_interaction(user, interaction_id)
    if not allowed:
        deny(request, action=action, object_type="interaction", object_id=interaction_id)
    return interaction_id


def require_customer(request, customer_id, *, action: str):
    if not may_see_customer(request.user, customer_id):
        deny(request, action=action, object_type="customer", object_id=customer_id)
    return customer_id


# --- agents in scope, for the records that belong to an agent (callbacks, approvals, evaluations…) ---------------

def agent_scope(user) -> list[str] | None:
    """Whose records `user` sees: None for everyone's (admins, compliance), else themself and, for a supervisor,
    the agents of their teams."""
    if reads_everything(user):
        return None
    return _scope_agents(user)


def agent_in_scope(user, agent_id: str | None) -> bool:
    scope = agent_scope(user)
    return scope is None or agent_id in scope


def by_agent(user, records: QuerySet, field: str = "agent_id") -> QuerySet:
    """`records` narrowed to the agents in `user`'s scope."""
    scope = agent_scope(user)
    return records if scope is None else records.filter(**{f"{field}__in": scope})


def queues_in_scope(user) -> list[str] | None:
    """None for every queue (admins, compliance), else the queues of the caller's scope (module docstring)."""
    return None if reads_everything(user) else _scope_queues(user)


def may_command(user) -> bool:
    """Whether `user` issues commands at all: admins, supervisors and agents (the `agent` group, or an agent
    record in routing); compliance only reads."""
    if is_admin(user) or is_supervisor(user):
        return True
    from routing.models import Agent

    return bool(user.is_authenticated and _cached(user, "agent", lambda: user.groups.filter(name="agent").exists()
                                                  or Agent.objects.filter(user=user).exists()))


# --- the scope check on every object named in an URL ------------------------------------------------------------

class InScope(BasePermission):
    """DRF permission on every view (DEFAULT_PERMISSION_CLASSES): an interaction or customer named in the URL
    must be in the caller's scope, or the answer is 404 as for one that does not exist, with an audit entry.

    URL keyword `interaction_id` or `customer_id` (and whatever a view maps in `scope_kwargs`, e.g. the
    interactions viewset's `pk`) are checked; reads need the object visible, commands (any method but GET, HEAD,
    OPTIONS) need it commandable too. Views that name no such object pass.
    """

    DEFAULT = {"interaction_id": "interaction", "customer_id": "customer"}

    def has_permission(self, request, view) -> bool:
        kwargs = getattr(view, "kwargs", None) or {}
        mapping = {**self.DEFAULT, **getattr(view, "scope_kwargs", {})}
        command = request.method not in SAFE_METHODS
        action = f"{request.method} {request.path}"
        for kwarg, kind in mapping.items():
            value = kwargs.get(kwarg)
            if value is None or not request.user.is_authenticated:
                continue
            if kind == "interaction":
                allowed = may_command_interaction(request.user, value) if command else may_see_interaction(
                    request.user, value)
            else:
                allowed = may_see_customer(request.user, value) and (not command or may_command(request.user))
            if not allowed:
                deny(request, action=action, object_type=kind, object_id=value)
        return True


def audit_denied_response(request, exc) -> None:
    """The exception handler calls this for 401 and 403 answers: every denied attempt is on record."""
    try:
        audit(request, outcome="denied", action=f"{request.method} {request.path}", reason=str(exc)[:200])
    except Exception:  # the audit must never turn a refusal into a 500
        log.exception("could not write the audit entry for a denied request")


def require_named(request, data: dict) -> None:
    """Interactions and customers named in a command's body must be in the caller's scope (404 otherwise, on
    record): an agent promises callbacks and files reports about their own contacts and customers only."""
    for key, kind in (("interaction_id", "interaction"), ("origin_interaction_id", "interaction"),
                      ("customer_id", "customer")):
        value = data.get(key)
        if value is None:
            continue
        allowed = (may_see_interaction(request.user, value) if kind == "interaction"
                   else may_see_customer(request.user, value))
        if not allowed:
            deny(request, action=f"{request.method} {request.path}", object_type=kind, object_id=value)


class IsAdmin(BasePermission):
    """The admin role (is_admin), for erasure, merges and the event store: a compliance officer made staff to
    read the audit log in the admin is not one."""

    message = "only an admin may do this"

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)
