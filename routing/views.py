"""The agent desk and the supervisor wallboard: Django-served pages over the REST API and the sockets.

No build step: each page is one template with its script inline. They use
the browser's session (log in at /accounts/login/) for REST (with the CSRF
token) and for the WebSockets.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from routing.models import Agent
from routing.selectors import is_supervisor


@login_required
@ensure_csrf_cookie
def desk(request):
    if not Agent.objects.filter(user=request.user).exists():
        raise PermissionDenied("the desk is for agents; ask an admin to make you one")
    return render(request, "routing/desk.html", {"agent_id": request.user.get_username()})


@login_required
@ensure_csrf_cookie
def wallboard(request):
    if not is_supervisor(request.user):
        raise PermissionDenied("the wallboard is for supervisors")
    return render(request, "routing/wallboard.html")
