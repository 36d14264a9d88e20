"""Reads over the customer projections."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from customers.models import CustomerProfile, TimelineEntry


def customer_list() -> QuerySet[CustomerProfile]:
    return CustomerProfile.objects.all()


def customer_get(customer_id: uuid.UUID) -> CustomerProfile:
    return CustomerProfile.objects.get(customer_id=customer_id)


def timeline_list(customer_id: uuid.UUID) -> QuerySet[TimelineEntry]:
    return TimelineEntry.objects.filter(customer_id=customer_id)
