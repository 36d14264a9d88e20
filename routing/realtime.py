"""Channels groups of routing and the pushes after a routing transaction commits.

Pushes are hints (DESIGN: real-time is a hint, REST is the truth): an agent
desk that reconnects reads /api/v1/agents/me/ and its interactions; a
wallboard reads /api/v1/queues/{name}/stats/.
"""

from __future__ import annotations

import logging

from django.db import transaction

from contactcenter.realtime import notify

log = logging.getLogger(__name__)

WALLBOARD = "routing.wallboard"


def agent_group(agent_pk: int) -> str:
    # The agent's primary key, not the user name: group names allow only a few characters.
    return f"routing.agent.{agent_pk}"


def push_after_commit(messages_fn) -> None:
    """After the transaction commits, build the messages (fresh reads) and push them; never fail the caller."""

    def send():
        try:
            notify(messages_fn())
        except Exception:  # a push is a hint: log and carry on
            log.warning("routing push failed", exc_info=True)

    transaction.on_commit(send)
