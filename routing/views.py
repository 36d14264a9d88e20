"""The agent desk and the supervisor wallboard: Django-served pages over the REST API and the sockets.

No build step: each page is one template with its script inline. They use
the browser's session (log in at /accounts/login/) for REST (with the CSRF
token) and for the WebSockets.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from authority.models import KINDS as ACTION_KINDS
from followups.models import Callback, Escalation
from frameworks.models import Script
from incidents.models import IncidentReport
from interactions import domain as interactions_domain
from routing.models import Agent, Queue
from routing.selectors import is_supervisor


def _choices(values) -> list[tuple[str, str]]:
    """(value, label) pairs for a <select>: the API's own codes, so the page offers exactly what it accepts."""
    return [(value, value.replace("_", " ")) for value in values]


@login_required
@ensure_csrf_cookie
def desk(request):
    if not Agent.objects.filter(user=request.user).exists():
        raise PermissionDenied("the desk is for agents; ask an admin to make you one")
    return render(request, "routing/desk.html", {
        "agent_id": request.user.get_username(),
        # The protocols' choices (docs/PROTOCOLS.md), from where the API checks them.
        "end_reasons": _choices(interactions_domain.END_REASONS),
        "warning_reasons": _choices(interactions_domain.WARNING_REASONS),
        "abuse_warnings_required": settings.ABUSE_WARNINGS_REQUIRED,
        "incident_kinds": _choices(IncidentReport.KINDS),
        "incident_actions": _choices(IncidentReport.ACTIONS),
        # technical_drop callbacks are scheduled by the system when a call drops, never promised by hand.
        "callback_reasons": _choices(r for r in Callback.REASONS if r != "technical_drop"),
        "escalation_targets": _choices(Escalation.TARGETS),
        "queues": list(Queue.objects.order_by("name").values_list("name", flat=True)),
        "action_kinds": _choices(ACTION_KINDS),
        # The contact reasons an active script may be switched on for (suggestions: the API says when none fits).
        "script_dispositions": sorted({reason for reasons in Script.objects.filter(active=True).values_list(
            "dispositions", flat=True) for reason in reasons}),
    })


@login_required
@ensure_csrf_cookie
def wallboard(request):
    if not is_supervisor(request.user):
        raise PermissionDenied("the wallboard is for supervisors")
    return render(request, "routing/wallboard.html")
