"""What erasure scrubs besides the data key: personal text that state rows keep in clear (docs/PRIVACY.md).

Events and the read models built from them hold personal data encrypted
under the customer's key (events.crypto), so destroying the key erases it
with nothing to rewrite. A few write-side rows keep free text in clear
because their own screens read it (an incident report's narrative, a
follow-up's note, an escalation's reason, an action's reason, the answers of
a script's steps) or keep a lookup key (a conversation's thread). Those rows
are not rebuilt from events, so `scrub()` rewrites them here, in the erasing
transaction: the erasure commits with them or not at all.

What stays is what the rows need to work and says nothing about the person:
ids, times, statuses, kinds, amounts, channel and queue names, and the keys of
the script steps done (a gate must stay open or closed as it was).

A new table that keeps a customer's text in clear belongs in `scrub()`:
tests/test_privacy.py searches every column of every table after an erasure
and fails on what it finds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from django.apps import apps
from django.db.models import Q
from django.db import connection

from events.crypto import ERASED

# The answer a stored idempotent command gives on a retry once the customer it named is erased.
ERASED_ANSWER = json.dumps({"detail": "this answer named a customer who has since been erased", "code": "erased"})


def scrub(customer_ids: Sequence[uuid.UUID], interaction_ids: Sequence[uuid.UUID] = ()) -> dict[str, int]:
    """Blank every customer's personal text in the write-side rows; returns the rows changed per table.

    `interaction_ids`: contacts of theirs whose rows name another customer (an unmerge gave them back: their
    rows keep naming the merge's target), scrubbed as theirs.

    Idempotent: scrubbing twice changes nothing more. Runs in the caller's
    transaction (customers.services.customer_erase).
    """
    ids, extra = list(customer_ids), list(interaction_ids)
    changed: dict[str, int] = {}
    if not ids:
        return changed

    def update(label: str, model: str, **values) -> None:
        rows = apps.get_model(model).objects.filter(Q(customer_id__in=ids) | Q(interaction_id__in=extra))
        changed[label] = rows.update(**values)

    update("incident reports", "incidents.IncidentReport", contact_details=ERASED, description=ERASED,
           agent_responses=ERASED, deescalation_steps=ERASED, follow_up_actions=ERASED, warnings=[],
           amendments=[])
    update("follow-ups", "followups.FollowUp", note=ERASED)
    update("escalations", "followups.Escalation", reason=ERASED)
    update("actions", "authority.Action", reason=ERASED)
    changed["script runs"] = _scrub_script_runs(ids, extra)

    Interaction = apps.get_model("interactions.Interaction")
    interactions = [*Interaction.objects.filter(customer_id__in=ids).values_list("id", flat=True), *extra]
    # A conversation's key can be the customer's number or handle (hashed since, but older rows hold it in
    # clear); without the row, a new message from them starts a new conversation of whoever they are now.
    changed["conversations"] = apps.get_model("interactions.Conversation").objects.filter(
        interaction_id__in=interactions).delete()[0]
    changed["stored answers"] = _scrub_stored_answers([*ids, *interactions])
    changed["admin log"] = _scrub_admin_log(ids)
    return changed


def _scrub_script_runs(ids: list[uuid.UUID], extra: list[uuid.UUID]) -> int:
    # The answers are what the customer said (identity checks, their need); a decision's answer is the branch
    # the contact took, a key of the script, kept so the run reads the same.
    n = 0
    ScriptRun = apps.get_model("frameworks.ScriptRun")
    for run in ScriptRun.objects.select_related("script").filter(Q(customer_id__in=ids) | Q(interaction_id__in=extra)):
        kinds = {s["key"]: s.get("kind") for s in run.script.steps}
        completed = {k: (v if kinds.get(k) == "decision" else ERASED) for k, v in run.completed.items()}
        if completed != run.completed:
            ScriptRun.objects.filter(pk=run.pk).update(completed=completed)
            n += 1
    return n


def _scrub_stored_answers(ids: list[uuid.UUID]) -> int:
    """Answers kept for retried commands (contactcenter.idempotency, 24 hours) that name the customer or one of
    their interactions. The row stays, so a retry still does not run the command twice; its body says why it
    is gone."""
    if not ids:
        return 0
    table = apps.get_model("contactcenter.IdempotentRequest")._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {table} SET response_body = convert_to(%s, 'UTF8'), "  # nosec B608  # the model's own table
            "content_type = 'application/json' "
            "WHERE response_body IS NOT NULL AND EXISTS ("
            "  SELECT 1 FROM unnest(%s::text[]) AS i(id) WHERE position(convert_to(i.id, 'UTF8') in response_body) > 0)",
            [ERASED_ANSWER, [str(i) for i in ids]],
        )
        return cur.rowcount


def _scrub_admin_log(ids: list[uuid.UUID]) -> int:
    # The admin's history names the objects it changed by their str(): a profile's is the customer's name.
    with connection.cursor() as cur:
        cur.execute("UPDATE django_admin_log SET object_repr = %s, change_message = '' "
                    "WHERE object_id = ANY(%s) AND object_repr <> %s",
                    [ERASED, [str(i) for i in ids], ERASED])
        return cur.rowcount
