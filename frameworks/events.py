"""Events of script runs (stream_type "script_run", stream_id = the run's id): a contact's path through a call
framework, on the customer's timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from events.registry import event, pii


@event("frameworks.ScriptStarted", version=1, emitted_by="frameworks.services")
@dataclass(frozen=True)
class ScriptStarted:
    """The contact follows `script` version `version` from now on: its queue's, or one the agent switched to for
    a contact reason (`disposition`). Steps already completed carry over when their keys match."""

    interaction_id: uuid.UUID
    script: str
    version: int
    disposition: str = ""


@event("frameworks.StepCompleted", version=1, emitted_by="frameworks.services.step_complete")
@dataclass(frozen=True)
class StepCompleted:
    """The agent completed step `step` (its `kind`), with the `answer` (a decision's option, or what the customer
    said: masked like every stored text)."""

    interaction_id: uuid.UUID
    step: str
    kind: str
    answer: str = pii(default="")
    by: str = ""
