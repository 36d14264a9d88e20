"""Reads of conversation intelligence."""

from __future__ import annotations

import uuid

from intelligence.models import Mood

TREND_CONTACTS = 10


def sentiment_trend(customer_ids: list[uuid.UUID], *, limit: int = TREND_CONTACTS) -> dict:
    """The customer's sentiment across their last `limit` scored interactions (oldest first): each one's running
    sentiment, lowest text and flags, and the trend: "declining" or "improving" when the mean of the last three
    moved by 0.2 or more against the ones before, else "steady"; "unknown" with fewer than four."""
    scored = Mood.objects.filter(customer_id__in=customer_ids, texts__gt=0)  # a flag alone is not a mood
    moods = list(scored.order_by("-updated_at")[:limit])[::-1]
    points = [{"interaction_id": m.interaction_id, "running": m.running, "lowest": m.lowest, "flags": m.flags,
               "at": m.updated_at} for m in moods]
    trend = "unknown"
    if len(moods) >= 4:
        recent = sum(m.running for m in moods[-3:]) / 3
        before = sum(m.running for m in moods[:-3]) / (len(moods) - 3)
        trend = "declining" if recent <= before - 0.2 else "improving" if recent >= before + 0.2 else "steady"
    return {"latest": moods[-1].running if moods else None, "trend": trend, "interactions": points}
