"""A script's steps, in pure Python: what a valid flow is, and where a contact stands in it.

A flow is a list of steps, in the order an agent meets them:

    {"key": "identity", "kind": "identity", "title": "Verify identity",
     "prompt": "Ask for the date of birth and the postcode on the account",
     "required": true, "gates": ["account_changes"]}

- `key`: unique in the flow; `kind`: one of KINDS; `title`, `prompt`: what the
  agent sees and says.
- `required`: the step must be completed before the contact is wrapped up as
  following the script (quality scorecards read it).
- `gates`: what is refused until the step is completed: `account_changes`
  (refunds, credits, discounts, fee waivers, expedited shipping: the
  authority actions).
- a `decision` step has `options`: [{"value", "label", "next"}], `next` the
  key of the step the branch goes to (the steps it skips are not due).
"""

from __future__ import annotations

KINDS = ("greeting", "identity", "discovery", "decision", "resolution", "confirmation", "closing", "note")
GATES = ("account_changes",)


class InvalidFlow(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def validate(steps) -> None:
    """Raise InvalidFlow naming the path of the first problem (e.g. steps[2].options[0].next)."""
    if not isinstance(steps, list) or not steps:
        raise InvalidFlow("steps", "a flow is a non-empty list of steps")
    keys = [s.get("key") if isinstance(s, dict) else None for s in steps]
    for i, step in enumerate(steps):
        at = f"steps[{i}]"
        if not isinstance(step, dict):
            raise InvalidFlow(at, "a step is an object")
        unknown = set(step) - {"key", "kind", "title", "prompt", "required", "gates", "options"}
        if unknown:
            raise InvalidFlow(at, f"unknown fields {sorted(unknown)}")
        if not isinstance(step.get("key"), str) or not step["key"].strip():
            raise InvalidFlow(f"{at}.key", "a step needs a key")
        if keys.index(step["key"]) < i:
            raise InvalidFlow(f"{at}.key", f"the key {step['key']!r} is used twice")
        if step.get("kind") not in KINDS:
            raise InvalidFlow(f"{at}.kind", f"kind must be one of {', '.join(KINDS)}")
        if not isinstance(step.get("title"), str) or not step["title"].strip():
            raise InvalidFlow(f"{at}.title", "a step needs a title")
        if not isinstance(step.get("required", False), bool):
            raise InvalidFlow(f"{at}.required", "true or false")
        gates = step.get("gates", [])
        if not isinstance(gates, list) or any(g not in GATES for g in gates):
            raise InvalidFlow(f"{at}.gates", f"a list of: {', '.join(GATES)}")
        if step["kind"] == "decision":
            options = step.get("options")
            if not isinstance(options, list) or len(options) < 2:
                raise InvalidFlow(f"{at}.options", "a decision has two options or more")
            for j, option in enumerate(options):
                if not isinstance(option, dict) or not isinstance(option.get("value"), str):
                    raise InvalidFlow(f"{at}.options[{j}].value", "each option has a value")
                target = option.get("next")
                if target is not None and (target not in keys or keys.index(target) <= i):
                    raise InvalidFlow(f"{at}.options[{j}].next", f"{target!r} is not a later step of this flow")
                # A skipped step can never be done: skipping one that gates something would lock it for good.
                gating = [s["key"] for s in steps[i + 1:keys.index(target)] if isinstance(s, dict) and s.get("gates")
                          ] if target is not None else []
                if gating:
                    raise InvalidFlow(f"{at}.options[{j}].next", f"the branch would skip {gating[0]!r}, which gates "
                                                                 "what the agent may do: put it before the decision")
        elif "options" in step:
            raise InvalidFlow(f"{at}.options", "only a decision step has options")


def progress(steps: list[dict], completed: dict[str, str]) -> dict:
    """Where a contact stands: `completed` maps step key -> answer. Returns the steps still due (a decision's
    branch skips the steps between it and its `next`), the next one, the required ones not done, and the
    gates still closed."""
    keys = [s["key"] for s in steps]
    skipped: set[str] = set()
    for i, step in enumerate(steps):
        if step["kind"] == "decision" and step["key"] in completed:
            chosen = next((o for o in step["options"] if o["value"] == completed[step["key"]]), None)
            if chosen and chosen.get("next"):
                skipped.update(keys[i + 1:keys.index(chosen["next"])])
    due = [s for s in steps if s["key"] not in completed and s["key"] not in skipped]
    required = [s["key"] for s in due if s.get("required")]
    closed = sorted({g for s in steps if s["key"] not in completed for g in s.get("gates", [])})
    return {"next_step": due[0]["key"] if due else None, "due": [s["key"] for s in due],
            "skipped": [k for k in keys if k in skipped], "required_pending": required, "closed_gates": closed,
            "required_done": sum(1 for s in steps if s.get("required") and s["key"] in completed),
            "required_total": sum(1 for s in steps if s.get("required") and s["key"] not in skipped)}
